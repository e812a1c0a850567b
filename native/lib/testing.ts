// @emu/native/testing: what the tests of emu's packages need of the native code and nobody else
// should call: fault points (src/base/fault_injection.h) and files that misbehave.
export { type FaultPoint, injectFault, lingeringSocket } from './fault-injection.js';
