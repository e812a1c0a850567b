import { existsSync, fstatSync, readFileSync } from 'node:fs';
import { closeFd, EventFd, memfdCreate, setNonblocking, UnixSocket } from '@emu/native';
import { expect } from 'chai';
import { Errno, IrqIndex, IrqInfoFlag, IrqSetFlag } from '../protocol/constants.js';
import { ProtocolError } from '../protocol/errors.js';
import { IrqTable } from './irqs.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const { DATA_NONE, DATA_BOOL, DATA_EVENTFD, ACTION_MASK, ACTION_UNMASK, ACTION_TRIGGER } = IrqSetFlag;

describe('IrqTable', () => {
  let table: IrqTable;
  const open: EventFd[] = [];
  const eventfd = () => {
    const e = EventFd.create();
    open.push(e);
    return e;
  };
  /**
   * The table adopts (and closes) the fds it is given, as it does with fds from the socket. Give it
   * copies received over a socketpair and keep the originals to watch.
   */
  async function give(n: number): Promise<{ mine: EventFd[]; theirs: number[] }> {
    const mine = Array.from({ length: n }, () => eventfd());
    const [a, b] = UnixSocket.pair();
    const got = new Promise<number[]>((resolve) =>
      b.on('data', (_chunk: Buffer, fds: number[]) => resolve(fds)),
    );
    a.write(
      Buffer.from([0]),
      mine.map((e) => e.fd),
    );
    const theirs = await got;
    a.close();
    b.close();
    return { mine, theirs };
  }

  beforeEach(() => {
    table = new IrqTable({ intx: 1, msi: 4, msix: 8, err: 1, req: 1 });
  });
  afterEach(() => {
    table.clear();
    for (const e of open.splice(0)) e.close();
  });

  it('reports flags per index as VFIO does', () => {
    expect(table.infoFlags(IrqIndex.INTX)).to.equal(
      IrqInfoFlag.EVENTFD | IrqInfoFlag.MASKABLE | IrqInfoFlag.AUTOMASKED,
    );
    expect(table.infoFlags(IrqIndex.MSIX)).to.equal(IrqInfoFlag.EVENTFD | IrqInfoFlag.NORESIZE);
    expect(table.infoFlags(IrqIndex.ERR)).to.equal(IrqInfoFlag.EVENTFD);
    expect([0, 1, 2, 3, 4].map((i) => table.count(i))).to.deep.equal([1, 4, 8, 1, 1]);
  });

  it('triggers INTx through its eventfd and holds it while masked (QEMU masks and unmasks INTx)', async () => {
    const { mine, theirs } = await give(1);
    const watch = mine[0];
    table.set({
      flags: DATA_EVENTFD | ACTION_TRIGGER,
      index: IrqIndex.INTX,
      start: 0,
      count: 1,
      fds: theirs,
    });
    expect(table.trigger(IrqIndex.INTX, 0)).to.equal(true);
    await table.settled();
    expect(watch.read()).to.equal(1n);
    table.set({ flags: DATA_NONE | ACTION_MASK, index: IrqIndex.INTX, start: 0, count: 1, fds: [] });
    expect(table.trigger(IrqIndex.INTX, 0)).to.equal(false);
    await table.settled();
    expect(watch.read()).to.equal(null);
    table.set({ flags: DATA_NONE | ACTION_UNMASK, index: IrqIndex.INTX, start: 0, count: 1, fds: [] });
    await table.settled();
    expect(watch.read()).to.equal(1n);
  });

  it('signals ERR and REQ eventfds, which take only ACTION_TRIGGER', async () => {
    for (const index of [IrqIndex.ERR, IrqIndex.REQ]) {
      const { mine, theirs } = await give(1);
      table.set({ flags: DATA_EVENTFD | ACTION_TRIGGER, index, start: 0, count: 1, fds: theirs });
      expect(table.enabled(index, 0)).to.equal(true);
      expect(table.trigger(index, 0)).to.equal(true);
      await table.settled();
      expect(mine[0].read()).to.equal(1n);
      expect(() =>
        table.set({ flags: DATA_NONE | ACTION_MASK, index, start: 0, count: 1, fds: [] }),
      ).to.throw(ProtocolError, 'ERR and REQ only take ACTION_TRIGGER');
    }
  });

  it('triggers selected MSI vectors with DATA_BOOL and all of a range with DATA_NONE', async () => {
    const { mine, theirs } = await give(4);
    table.set({ flags: DATA_EVENTFD | ACTION_TRIGGER, index: IrqIndex.MSI, start: 0, count: 4, fds: theirs });
    table.set({
      flags: DATA_BOOL | ACTION_TRIGGER,
      index: IrqIndex.MSI,
      start: 1,
      count: 3,
      bools: Uint8Array.from([1, 0, 1]),
      fds: [],
    });
    table.set({ flags: DATA_NONE | ACTION_TRIGGER, index: IrqIndex.MSI, start: 0, count: 1, fds: [] });
    await table.settled();
    expect(mine.map((e) => e.read())).to.deep.equal([1n, 1n, null, 1n]);
  });

  it('disables an index with count 0 and closes what it held', async () => {
    const { theirs } = await give(2);
    table.set({
      flags: DATA_EVENTFD | ACTION_TRIGGER,
      index: IrqIndex.MSIX,
      start: 6,
      count: 2,
      fds: theirs,
    });
    table.set({ flags: DATA_NONE | ACTION_TRIGGER, index: IrqIndex.MSIX, start: 0, count: 0, fds: [] });
    expect(table.enabled(IrqIndex.MSIX, 6)).to.equal(false);
    expect(table.trigger(IrqIndex.MSIX, 7)).to.equal(false);
    for (const fd of theirs) expect(existsSync(`/proc/self/fd/${fd}`)).to.equal(false);
  });

  it('refuses mask/unmask eventfds with ENOTSUP and closes them', async () => {
    const { theirs } = await give(1);
    try {
      table.set({
        flags: DATA_EVENTFD | ACTION_UNMASK,
        index: IrqIndex.INTX,
        start: 0,
        count: 1,
        fds: theirs,
      });
      expect.fail('accepted');
    } catch (err) {
      expect((err as ProtocolError).errno).to.equal(Errno.ENOTSUP);
    }
    expect(existsSync(`/proc/self/fd/${theirs[0]}`)).to.equal(false);
  });

  it('applies SET_IRQS all or nothing: one fd that is not an eventfd changes no vector', async () => {
    const before = await give(2);
    table.set({
      flags: DATA_EVENTFD | ACTION_TRIGGER,
      index: IrqIndex.MSIX,
      start: 0,
      count: 2,
      fds: before.theirs,
    });
    const { mine, theirs } = await give(2);
    const memfd = memfdCreate('emu-test-not-an-eventfd', 4096);
    expect(() =>
      table.set({
        flags: DATA_EVENTFD | ACTION_TRIGGER,
        index: IrqIndex.MSIX,
        start: 0,
        count: 3,
        fds: [...theirs, memfd],
      }),
    ).to.throw('must be an eventfd');
    for (const fd of [...theirs, memfd]) expect(existsSync(`/proc/self/fd/${fd}`)).to.equal(false);
    // Files opened now reuse the numbers the request's fds had; no interrupt may write into them.
    const reused = [memfdCreate('emu-test-reuse-a', 4096), memfdCreate('emu-test-reuse-b', 4096)];
    try {
      expect(table.trigger(IrqIndex.MSIX, 0)).to.equal(true);
      expect(table.trigger(IrqIndex.MSIX, 1)).to.equal(true);
      await table.settled();
      expect(before.mine.map((e) => e.read())).to.deep.equal([1n, 1n]);
      expect(mine.map((e) => e.read())).to.deep.equal([null, null]);
      for (const fd of reused) expect(fstatSync(fd).size).to.equal(4096);
      expect(readFileSync(`/proc/self/fd/${reused[0]}`).every((b) => b === 0)).to.equal(true);
    } finally {
      for (const fd of reused) closeFd(fd);
    }
  });

  it('counts and drops an interrupt whose eventfd is full, reports it, and delivers once the client reads it', async () => {
    let reported = 0;
    const own = new IrqTable({ intx: 1, msi: 1, msix: 8, err: 1, req: 1 }, () => reported++, 'drops');
    const { mine, theirs } = await give(1);
    own.set({
      flags: DATA_EVENTFD | ACTION_TRIGGER,
      index: IrqIndex.MSIX,
      start: 3,
      count: 1,
      fds: theirs,
    });
    // A client that never reads its eventfd: the counter at its maximum.
    mine[0].write(0xffff_ffff_ffff_fffen);
    expect(own.trigger(IrqIndex.MSIX, 3)).to.equal(true);
    await own.settled();
    expect(own.trigger(IrqIndex.MSIX, 3)).to.equal(true);
    await own.settled();
    expect(own.dropped).to.equal(2);
    for (let i = 0; i < 100 && reported === 0; i++) await sleep(5);
    expect(reported, 'reported on the event loop').to.be.within(1, 2);
    expect(mine[0].read()).to.equal(0xffff_ffff_ffff_fffen);
    expect(own.trigger(IrqIndex.MSIX, 3)).to.equal(true);
    await own.settled();
    expect(mine[0].read()).to.equal(1n);
    expect(own.triggered).to.equal(1);
    own.close();
  });

  it('stops its writer when cleared, interrupting a write a client holds blocked, and closes every fd', async () => {
    const { mine, theirs } = await give(1);
    table.set({
      flags: DATA_EVENTFD | ACTION_TRIGGER,
      index: IrqIndex.MSIX,
      start: 0,
      count: 1,
      fds: theirs,
    });
    setNonblocking(mine[0].fd, false);
    mine[0].write(0xffff_ffff_ffff_fffen);
    table.trigger(IrqIndex.MSIX, 0);
    await sleep(50); // the writer is in write(2), blocked
    const t = Date.now();
    table.clear();
    expect(Date.now() - t, 'ms to clear').to.be.below(500);
    expect(existsSync(`/proc/self/fd/${theirs[0]}`)).to.equal(false);
    expect(table.dropped).to.equal(1);
  });
});
