import { expect } from 'chai';
import { NetworkError } from './errors.js';
import { Loopback } from './loopback.js';
import { PointToPoint } from './point-to-point.js';
import { BROADCAST, ethFrame, eventually, RecordingPort } from './test-helpers.js';

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';

describe('PointToPoint', () => {
  it('carries every frame to the other end, whatever its destination MAC', () => {
    const link = new PointToPoint('tap:tap0');
    const nic = new RecordingPort('nic');
    const tap = new RecordingPort('tap:tap0');
    nic.attachment = link.attach(nic);
    tap.attachment = link.attach(tap);
    const frames = [ethFrame(B, A), ethFrame(A, A), ethFrame(BROADCAST, A), ethFrame('33:33:00:00:00:01', A)];
    for (const frame of frames) nic.send(frame);
    expect(tap.frames).to.deep.equal(frames);
    tap.send(ethFrame(A, B));
    expect(nic.frames).to.have.length(1);
    expect(nic.attachment.stats).to.deep.include({ rxFrames: 4, txFrames: 1 });
    expect(link.stats()).to.deep.include({ name: 'tap:tap0', kind: 'point-to-point' });
  });

  it('has two ends only; with one, frames have no destination', () => {
    const link = new PointToPoint('p2p');
    const a = new RecordingPort('a');
    a.attachment = link.attach(a);
    a.send(ethFrame(B, A));
    expect(a.attachment.stats.drops.noDestination).to.equal(1);
    link.attach(new RecordingPort('b'));
    expect(() => link.attach(new RecordingPort('c'))).to.throw(
      NetworkError,
      'p2p: a point-to-point link has two ends (a, b); c cannot join',
    );
  });

  it('drops runts and oversize frames like a switch', () => {
    const link = new PointToPoint('p2p');
    const a = new RecordingPort('a');
    const b = new RecordingPort('b');
    a.attachment = link.attach(a, { mtu: 576 });
    b.attachment = link.attach(b);
    a.send(Buffer.alloc(10));
    a.send(ethFrame(B, A, { payloadLength: 577 }));
    b.send(ethFrame(A, B, { payloadLength: 1000 })); // fits b's MTU, not a's: dropped on the way out
    expect(a.attachment.stats.drops).to.include({ runt: 1, oversize: 2 });
    expect(a.frames).to.have.length(0);
    expect(b.frames).to.have.length(0);
  });
});

describe('Loopback', () => {
  it('hands every frame straight back to the port that sent it, and to no other', () => {
    const loop = new Loopback();
    const a = new RecordingPort('a');
    const b = new RecordingPort('b');
    a.attachment = loop.attach(a);
    b.attachment = loop.attach(b);
    const frame = ethFrame(B, A);
    a.send(frame);
    a.send(ethFrame(BROADCAST, A));
    a.send(Buffer.alloc(5));
    expect(a.frames[0]).to.equal(frame);
    expect(a.frames).to.have.length(2);
    expect(b.frames).to.have.length(0);
    expect(a.attachment.stats).to.deep.include({ rxFrames: 2, txFrames: 2, rxBytes: 120, txBytes: 120 });
    expect(a.attachment.stats.drops.runt).to.equal(1);
    expect(loop.stats().ports.map((p) => p.port)).to.deep.equal(['a', 'b']);
  });

  it('a port that answers every frame from deliver() loops without recursion or hanging', async () => {
    const loop = new Loopback();
    let deliveries = 0;
    let depth = 0;
    let maxDepth = 0;
    const port = {
      name: 'echo',
      deliver(frame: Buffer) {
        depth++;
        maxDepth = Math.max(maxDepth, depth);
        deliveries++;
        attachment.send(frame);
        depth--;
      },
    };
    const attachment = loop.attach(port);
    attachment.send(ethFrame(B, A));
    expect(deliveries).to.equal(257); // the first, then one drain budget; the rest on later turns
    await eventually(() => deliveries > 1000, 'the echo to go on over several turns of the event loop');
    attachment.detach();
    expect(maxDepth).to.equal(1);
  });
});
