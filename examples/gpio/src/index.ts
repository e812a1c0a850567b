import { defaultRegistry, type EmudevRegistry } from '@emu/emudev';
import { gpioDriver } from './gpio.js';

export { GPIO_ID, GPIO_PCI_ID, GpioReg, gpioDriver } from './gpio.js';

/** Registers emu_gpio with a registry (the default one unless given), once. */
export function register(registry: EmudevRegistry = defaultRegistry): void {
  if (!registry.getDriver(gpioDriver.name)) registry.registerDriver(gpioDriver);
}
