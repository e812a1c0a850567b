/**
 * An emu_iavf device the network refuses (its pcap file exists, or its folder does not) leaves
 * nothing behind: the shared tail page (a memfd and its mappings), the native twin and the vectors
 * its build had taken are released. The process's fds and memfd mappings are counted before and after.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmuDevice } from '@emu/emudev';
import { NetworkRegistry } from '@emu/network';
import { silentLogger } from '@emu/vfio-user';
import { expect } from 'chai';
import { createIavfDriver } from './driver.js';

const fdCount = () => readdirSync('/proc/self/fd').length;
const memfdMaps = () =>
  readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.includes('memfd:')).length;

describe('emu_iavf: a device the network refuses takes nothing with it', () => {
  let dir: string;
  let networks: NetworkRegistry;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'emu-iavf-rollback-'));
    networks = new NetworkRegistry();
  });
  afterEach(() => {
    networks.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const cases = [
    ['a pcap file that exists', () => writeFileSync(join(dir, 'taken.pcap'), 'x'), 'taken.pcap', 'exists'],
    ['a pcap folder that does not exist', () => {}, 'missing/cap.pcap', 'ENOENT'],
  ] as const;
  for (const [what, setup, pcap, error] of cases) {
    it(`releases its tail page, twin and vectors when refused for ${what}`, async () => {
      setup();
      const driver = createIavfDriver(() => networks);
      // A first build and close, so what the process keeps for good (the data plane) is there already.
      const warm = new EmuDevice('warm0', driver, { path: join(dir, 'warm.sock'), logger: silentLogger });
      await warm.configure({});
      await warm.close();
      const fds = fdCount();
      const maps = memfdMaps();
      for (let i = 0; i < 20; i++) {
        const device = new EmuDevice(`nic${i}`, driver, {
          path: join(dir, `nic${i}.sock`),
          logger: silentLogger,
        });
        const refused = await device.configure({ pcap: join(dir, pcap) }).catch((e: Error) => e.message);
        expect(refused).to.be.a('string').and.contain(error);
        await device.close();
      }
      expect(fdCount(), 'fds').to.equal(fds);
      expect(memfdMaps(), 'memfd mappings').to.equal(maps);
    });
  }
});
