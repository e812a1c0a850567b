/** Shell for guests' scripts (busybox sh in the harness's initramfs): bring up an iavf NIC, wait for a peer, signal between guests. */

/**
 * Loads iavf, waits for eth0, gives it `addr` (and `mtu`), sets it up and waits for carrier; prints
 * `carrier=0|1`.
 */
export const up = (addr: string, opts: { mtu?: number } = {}) => `
modprobe iavf
t=0; while [ -z "$(ls /sys/class/net | grep eth)" ] && [ $t -lt 100 ]; do sleep 0.1; t=$((t+1)); done
ip addr add ${addr} dev eth0;${opts.mtu ? ` ip link set eth0 mtu ${opts.mtu};` : ''} ip link set eth0 up
t=0; while [ "$(cat /sys/class/net/eth0/carrier)" != 1 ] && [ $t -lt 100 ]; do sleep 0.1; t=$((t+1)); done
echo "carrier=$(cat /sys/class/net/eth0/carrier)"
`;

/** Waits (up to 60 s) until `ip` answers a ping. */
export const waitPing = (ip: string) =>
  `t=0; until ping -c 1 -W 1 ${ip} > /dev/null 2>&1 || [ $t -ge 60 ]; do t=$((t+1)); done`;

/**
 * Pings `ip` once every `pauseS` seconds for good, one console line per ping: `<tag>: pong` or
 * `<tag>: lost` (a neighbour's proof that its NIC kept working).
 */
export const pingForever = (tag: string, ip: string, pauseS: number) => `while true; do
  if ping -c 1 -W 1 ${ip} > /dev/null 2>&1; then echo "${tag}: pong"; else echo "${tag}: lost"; fi
  sleep ${pauseS}
done`;

/** Tells the guest at `ip` that a step is done: connects to its `port` until it listens. */
export const signal = (ip: string, port: number) =>
  `t=0; until echo x | nc ${ip} ${port} > /dev/null 2>&1 || [ $t -ge 300 ]; do sleep 0.2; t=$((t+1)); done`;

/** Waits for the other guest's signal() on `port`. */
export const awaitSignal = (port: number) => `nc -l -p ${port} > /dev/null`;

/**
 * Starts a TCP server on `port` in the background that writes what it receives to `out`; its pid is in
 * $!. busybox nc ends when its stdin does: the server's is a FIFO held open and never written.
 */
export const ncReceive = (port: number, out: string) =>
  `[ -p /tmp/nc-in ] || { mkfifo /tmp/nc-in; exec 3<>/tmp/nc-in; }; nc -l -p ${port} < /tmp/nc-in > ${out} &`;
