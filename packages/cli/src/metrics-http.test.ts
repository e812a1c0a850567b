/**
 * The metrics endpoint's HTTP on its own, with small limits: one request per connection whatever a
 * client sends, each bound, and what a real HTTP client sees.
 */
import { expect } from 'chai';
import { RawHttpClient } from './http-env.fixture.js';
import { type HttpAnswer, OneRequestHttpServer } from './metrics-http.js';
import { until } from './test-env.fixture.js';

const LIMITS = {
  maxConnections: 5,
  maxHeaderBytes: 1024,
  headersTimeoutMs: 300,
  socketTimeoutMs: 500,
  lingerMs: 200,
  lingerBytes: 64 * 1024,
};

describe('the metrics endpoint over HTTP: one request per connection', () => {
  let server: OneRequestHttpServer;
  let port: number;
  let asked: string[];
  let answer: (path: string) => Promise<HttpAnswer>;
  const raws: RawHttpClient[] = [];
  const raw = (reading = true) => {
    const r = new RawHttpClient(port, { reading });
    raws.push(r);
    return r;
  };

  beforeEach(async () => {
    asked = [];
    answer = async (path) =>
      path === '/metrics'
        ? { status: 200, type: 'text/plain; version=0.0.4', body: 'up 1\n' }
        : { status: 404, type: 'text/plain', body: 'no\n' };
    server = new OneRequestHttpServer(LIMITS, (method, path) => {
      asked.push(`${method} ${path}`);
      return answer(path);
    });
    port = (await server.listen('127.0.0.1', 0)).port;
  });
  afterEach(async () => {
    for (const r of raws.splice(0)) r.socket.destroy();
    await server.close();
    expect(server.connections).to.equal(0);
  });

  it('answers GET and HEAD as an HTTP client expects, with Connection: close', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics?name[]=x`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('connection')).to.equal('close');
    expect(res.headers.get('content-type')).to.equal('text/plain; version=0.0.4');
    expect(await res.text()).to.equal('up 1\n');
    const head = await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'HEAD' });
    expect(head.headers.get('content-length')).to.equal('5');
    expect(await head.text()).to.equal('');
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).to.equal(404);
    const post = await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST', body: 'x' });
    expect(post.status).to.equal(405);
    expect(post.headers.get('allow')).to.equal('GET, HEAD');
    // Absolute-form targets, as a proxy sends them.
    const r = raw();
    r.socket.write('GET http://emu:9464/metrics?a HTTP/1.1\r\nHost: emu\r\n\r\n');
    await until(() => r.closed, 'the answer');
    expect(asked).to.deep.equal(['GET /metrics', 'HEAD /metrics', 'GET /', 'GET /metrics']);
  });

  it('makes one answer for any number of pipelined requests, and closes', async () => {
    const r = raw();
    r.socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(1900));
    await until(() => r.closed, 'the connection to close', 3000);
    expect(r.statuses).to.deep.equal(['HTTP/1.1 200']);
    expect(asked).to.deep.equal(['GET /metrics']);
  });

  it('refuses what is no HTTP/1.x request head within its bounds: 400, 505, 431, 408', async () => {
    const cases: Array<[string, string]> = [
      ['hello\r\n\r\n', '400'],
      ['GET /metrics HTTP/2.0\r\n\r\n', '505'],
      ['GET /metrics HTTP/1.1\r\n', '400'], // and then the client ends its side
      [`GET /metrics HTTP/1.1\r\nX: ${'y'.repeat(2000)}\r\n\r\n`, '431'],
      ['GET /metrics HTTP/1.1\r\nHost: x\r\n', '408'], // never ends
    ];
    const rs = cases.map(([text], i) => {
      const r = raw();
      r.socket.write(text);
      if (i === 2) r.socket.end();
      return r;
    });
    for (const r of rs) await until(() => r.closed, 'an answer', 2000);
    expect(rs.map((r) => r.statuses)).to.deep.equal(cases.map(([, s]) => [`HTTP/1.1 ${s}`]));
    expect(asked).to.deep.equal([]);
  });

  it('bounds a head that dribbles in, byte by byte, by time', async () => {
    const r = raw();
    const drip = setInterval(() => r.socket.write('x'), 10);
    await until(() => r.closed, 'the connection to close', 2000);
    clearInterval(drip);
    expect(r.statuses).to.deep.equal(['HTTP/1.1 408']);
  });

  it('times the client, not emu: a scrape slower than socketTimeoutMs is still answered', async () => {
    answer = async () => {
      await new Promise((r) => setTimeout(r, 2 * LIMITS.socketTimeoutMs));
      return { status: 200, type: 'text/plain', body: 'slow\n' };
    };
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(await res.text()).to.equal('slow\n');
  });

  it('takes a head sent in time for in time, though the event loop was busy when its timer fired', async () => {
    const r = raw();
    await until(() => server.connections === 1, 'the connection');
    await new Promise((resolve) => setTimeout(resolve, LIMITS.headersTimeoutMs - 100));
    r.socket.write('GET /metrics HTTP/1.1\r\n\r\n');
    const stallEnd = performance.now() + 200;
    while (performance.now() < stallEnd);
    await until(() => r.closed, 'the answer');
    expect(r.statuses).to.deep.equal(['HTTP/1.1 200']);
  });

  it('answers a client that shuts down its side right after its request', async () => {
    const r = raw();
    r.socket.end('GET /metrics HTTP/1.0\r\n\r\n');
    await until(() => r.closed, 'the answer');
    expect(r.statuses).to.deep.equal(['HTTP/1.1 200']);
  });

  it('tells connections past maxConnections 503; a client that never reads is dropped', async () => {
    const releases: Array<() => void> = [];
    answer = () =>
      new Promise((resolve) => {
        releases.push(() => resolve({ status: 200, type: 'text/plain', body: 'late\n' }));
      });
    const five = [0, 1, 2, 3, 4];
    const busy = five.map(() => raw());
    for (const r of busy) r.socket.write('GET /metrics HTTP/1.1\r\n\r\n');
    await until(() => asked.length === 5, 'five requests in hand');
    const refused = five.map(() => raw());
    await until(() => refused.every((r) => r.closed), 'the refusals');
    expect(refused.map((r) => r.statuses)).to.deep.equal(five.map(() => ['HTTP/1.1 503']));
    for (const release of releases) release();
    for (const r of busy) await until(() => r.closed, 'the answers');
    expect(busy.map((r) => r.statuses[0])).to.deep.equal(five.map(() => 'HTTP/1.1 200'));
    // An answer nobody reads: 4 MiB, which the kernel's buffers cannot hold.
    answer = async () => ({ status: 200, type: 'text/plain', body: 'z'.repeat(4 << 20) });
    const sleeper = raw(false);
    sleeper.socket.write('GET /metrics HTTP/1.1\r\n\r\n');
    await until(() => server.connections === 1 && asked.length === 6, 'the request');
    // Node's socket timeout: no traffic for socketTimeoutMs (checked at that granularity).
    await until(() => server.connections === 0, 'the sleeper to be dropped', 4 * LIMITS.socketTimeoutMs);
  });
});
