/** Placeholder replaced below. */
export function dpdkReference(_size: number, _seconds: number): { mpps?: number; why?: string } {
  return { why: 'not measured yet' };
}
