export { DmaStatus, DOORBELL_IDS, DoorbellDevice, MAGIC, Reg } from './device.js';
