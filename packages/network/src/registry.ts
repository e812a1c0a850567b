// Networks by name, and the one call a NIC makes to join the network its devargs name:
// `net=NAME` (a switch, created on first use; default "default"), `net=tap:IFNAME`, `net=loopback`,
// optionally with `pcap=FILE`.
import { resolve } from 'node:path';
import type { NetworkOptions } from './base-network.js';
import { NetworkError } from './errors.js';
import { Loopback } from './loopback.js';
import {
  type CapturedAttachment,
  PcapWriter,
  type PcapWriter as PcapWriterType,
  withCapture,
} from './pcap.js';
import { PointToPoint } from './point-to-point.js';
import type { Attachment, NetworkStats, Port } from './port.js';
import { isValidSwitchName, L2Switch, type L2SwitchOptions, type SwitchStats } from './switch.js';
import { type TapBackend, TapPort, type TapStats } from './tap-port.js';

export const DEFAULT_NETWORK = 'default';

/** What a `net=` value names. */
export type NetSpec =
  | { kind: 'switch'; name: string }
  | { kind: 'tap'; ifname: string }
  | { kind: 'loopback' };

const IFNAME_MAX_BYTES = 15;
const FORMS = 'NAME (a switch), tap:IFNAME or loopback';

/**
 * Parses a `net=` value: `NAME` (a switch: letters, digits, '_', '.', '-'), `tap:IFNAME` (a TAP
 * interface; IFNAME may be a kernel template such as `emu%d`) or `loopback`. Throws NetworkError
 * EINVAL with a message that quotes the value and shows the accepted forms.
 */
export function parseNetSpec(text: string): NetSpec {
  if (typeof text !== 'string') throw new NetworkError('EINVAL', `net must be a string, got ${typeof text}`);
  if (text === '') throw new NetworkError('EINVAL', `net= is empty: use ${FORMS}`);
  if (text === 'loopback') return { kind: 'loopback' };
  const colon = text.indexOf(':');
  if (colon >= 0) {
    const form = text.slice(0, colon);
    const rest = text.slice(colon + 1);
    if (form !== 'tap') {
      throw new NetworkError('EINVAL', `net=${text}: unknown network form "${form}:": use ${FORMS}`);
    }
    if (rest === '') throw new NetworkError('EINVAL', 'net=tap: needs an interface name, e.g. net=tap:tap0');
    const bytes = Buffer.byteLength(rest);
    if (bytes > IFNAME_MAX_BYTES) {
      throw new NetworkError(
        'EINVAL',
        `net=${text}: interface name "${rest}" is ${bytes} bytes; Linux allows at most ${IFNAME_MAX_BYTES}`,
      );
    }
    if (rest === '.' || rest === '..' || /[/:\s\0]/.test(rest)) {
      throw new NetworkError(
        'EINVAL',
        `net=${text}: "${rest}" is not a valid interface name (no "/", ":" or whitespace)`,
      );
    }
    return { kind: 'tap', ifname: rest };
  }
  if (!isValidSwitchName(text)) {
    throw new NetworkError(
      'EINVAL',
      `net=${text}: not a valid network name: use ${FORMS}; a switch name is 1-64 letters, digits, '_', '.' or '-'`,
    );
  }
  return { kind: 'switch', name: text };
}

/** The `net=` text for a spec (parseNetSpec's inverse). */
export function formatNetSpec(spec: NetSpec): string {
  switch (spec.kind) {
    case 'switch':
      return spec.name;
    case 'tap':
      return `tap:${spec.ifname}`;
    case 'loopback':
      return 'loopback';
  }
}

export interface NicAttachOptions {
  /** The NIC's MTU (default 1500). */
  mtu?: number;
  /** Capture everything the port sends and receives to this pcap file (created, mode 0600).
   * Several ports may share one file: it stays open until the last of them detaches. */
  pcap?: string;
  /** Replace an existing file at `pcap` (default: an existing file is an error). */
  pcapOverwrite?: boolean;
}

/** A NIC's plug from NetworkRegistry.attach(): a capture can start and stop while it is attached. */
export interface NicAttachment extends Attachment {
  /** The pcap file being written (absolute), or null. */
  readonly capture: string | null;
  /**
   * Captures from now on to `path` (created, mode 0600; a file another port captures to is shared).
   * Throws NetworkError EBUSY while capturing already, ECLOSED after detach, and PcapWriter's errors
   * (EEXIST without `overwrite`, EACCES…) with the path.
   */
  startCapture(path: string, options?: { overwrite?: boolean }): void;
  /** Stops capturing (the file is closed when no other port writes it). Does nothing if not capturing. */
  stopCapture(): void;
}

export interface NetworkRegistryOptions extends NetworkOptions {
  /** Options for the switches the registry creates. */
  switch?: Omit<L2SwitchOptions, keyof NetworkOptions>;
  /** Opens a TAP device (default @emu/native's TapDevice.open); tests pass a fake. */
  openTap?: (ifname: string) => TapBackend;
  /** Called when a TAP stops reading (its interface was deleted). Default: a process warning. */
  onTapError?: (error: Error, tap: TapPort) => void;
}

export interface TapStatsRow extends TapStats {
  ifname: string;
  /** The port on the other end of the link. */
  peer: string;
}

export interface CaptureStatsRow {
  path: string;
  ports: string[];
  packets: number;
  bytes: number;
  error: string | null;
}

/** Everything `emu stats` shows about networks. */
export interface RegistryStats {
  switches: SwitchStats[];
  /** Point-to-point links (one per TAP) and loopback. */
  links: NetworkStats[];
  taps: TapStatsRow[];
  captures: CaptureStatsRow[];
}

interface Capture {
  /** Absolute. */
  path: string;
  writer: PcapWriterType;
  ports: Set<string>;
  users: number;
}

interface TapLink {
  tap: TapPort;
  link: PointToPoint;
  peer: string;
}

/** The networks of one emu process. */
export class NetworkRegistry {
  readonly #options: NetworkRegistryOptions;
  readonly #switches = new Map<string, L2Switch>();
  readonly #taps = new Set<TapLink>();
  readonly #captures = new Map<string, Capture>();
  readonly #attachments = new Set<Attachment>();
  #loopback: Loopback | null = null;

  constructor(options: NetworkRegistryOptions = {}) {
    this.#options = options;
  }

  /** The switch called `name` (default "default"), created on first use. */
  get(name: string = DEFAULT_NETWORK): L2Switch {
    let sw = this.#switches.get(name);
    if (sw === undefined) {
      sw = new L2Switch(name, { ...this.#options.switch, onPortError: this.#options.onPortError });
      this.#switches.set(name, sw);
    }
    return sw;
  }

  /** The switch called `name` if it exists. */
  find(name: string): L2Switch | undefined {
    return this.#switches.get(name);
  }

  /** Every switch created so far. */
  get switches(): L2Switch[] {
    return [...this.#switches.values()];
  }

  /**
   * Plugs a NIC's port into what `net` names (a `net=` value or a parsed spec; default the
   * "default" switch): a switch port; a point-to-point link to TAP `IFNAME` (opened now, closed on
   * detach); or loopback. With `pcap`, everything the port sends and receives is captured.
   * Throws NetworkError EINVAL for a bad spec, and @emu/native's SystemError if the TAP cannot be
   * opened (EPERM without CAP_NET_ADMIN, EBUSY...).
   */
  attach(port: Port, net: string | NetSpec = DEFAULT_NETWORK, options: NicAttachOptions = {}): NicAttachment {
    const spec = typeof net === 'string' ? parseNetSpec(net) : net;
    let capture =
      options.pcap === undefined
        ? null
        : this.#openCapture(options.pcap, port.name, options.pcapOverwrite ?? false);
    let tapLink: TapLink | null = null;
    let inner: CapturedAttachment;
    try {
      const connect = (p: Port): Attachment => {
        switch (spec.kind) {
          case 'switch':
            return this.get(spec.name).attach(p, { mtu: options.mtu });
          case 'loopback':
            return this.#loopbackNetwork().attach(p, { mtu: options.mtu });
          case 'tap': {
            tapLink = this.#openTap(spec.ifname, port.name);
            try {
              const attachment = tapLink.link.attach(p, { mtu: options.mtu });
              tapLink.tap.attachTo(tapLink.link, { mtu: options.mtu });
              return attachment;
            } catch (error) {
              tapLink.tap.close();
              throw error;
            }
          }
        }
      };
      // Always through withCapture, so a capture can start and stop later (startCapture).
      inner = withCapture(port, capture?.writer ?? null, connect);
    } catch (error) {
      if (capture !== null) this.#releaseCapture(capture, port.name);
      throw error;
    }
    const link = tapLink as TapLink | null;
    if (link !== null) this.#taps.add(link);
    let attached = true;
    const stopCapture = () => {
      if (capture === null) return;
      inner.setWriter(null);
      this.#releaseCapture(capture, port.name);
      capture = null;
    };
    const attachment: NicAttachment = {
      send: (frame) => inner.send(frame),
      detach: () => {
        if (!attached) return;
        attached = false;
        this.#attachments.delete(attachment);
        inner.detach();
        if (link !== null) {
          link.tap.close();
          this.#taps.delete(link);
        }
        stopCapture();
      },
      get stats() {
        return inner.stats;
      },
      get capture() {
        return capture?.path ?? null;
      },
      startCapture: (path, { overwrite = false } = {}) => {
        if (!attached) throw new NetworkError('ECLOSED', `${port.name}: detached, nothing to capture`);
        if (capture !== null) {
          throw new NetworkError(
            'EBUSY',
            `${port.name}: already capturing to ${capture.path}; stop that first`,
          );
        }
        capture = this.#openCapture(path, port.name, overwrite);
        inner.setWriter(capture.writer);
      },
      stopCapture,
    };
    this.#attachments.add(attachment);
    return attachment;
  }

  /** A table of every network, TAP and capture. */
  stats(): RegistryStats {
    const links: NetworkStats[] = [...this.#taps].map((t) => t.link.stats());
    if (this.#loopback !== null) links.push(this.#loopback.stats());
    return {
      switches: this.switches.map((sw) => sw.stats()),
      links,
      taps: [...this.#taps].map(({ tap, peer }) => ({ ifname: tap.ifname, peer, ...tap.stats })),
      captures: [...this.#captures].map(([path, c]) => ({
        path,
        ports: [...c.ports],
        packets: c.writer.packets,
        bytes: c.writer.bytes,
        error: c.writer.error?.message ?? null,
      })),
    };
  }

  /** Detaches everything attached through attach(): closes TAPs and pcap files. Idempotent. */
  close(): void {
    for (const attachment of [...this.#attachments]) attachment.detach();
  }

  #loopbackNetwork(): Loopback {
    this.#loopback ??= new Loopback('loopback', { onPortError: this.#options.onPortError });
    return this.#loopback;
  }

  #openTap(ifname: string, peer: string): TapLink {
    const onTapError = this.#options.onTapError;
    const backend = this.#options.openTap?.(ifname);
    const tapOptions = onTapError ? { onError: (error: Error) => onTapError(error, tap) } : {};
    const tap: TapPort = backend ? new TapPort(backend, tapOptions) : TapPort.open(ifname, tapOptions);
    const link = new PointToPoint(tap.name, { onPortError: this.#options.onPortError });
    return { tap, link, peer };
  }

  #openCapture(path: string, portName: string, overwrite: boolean): Capture {
    const key = resolve(path);
    let capture = this.#captures.get(key);
    if (capture === undefined) {
      capture = { path: key, writer: PcapWriter.open(key, { overwrite }), ports: new Set(), users: 0 };
      this.#captures.set(key, capture);
    }
    capture.users++;
    capture.ports.add(portName);
    return capture;
  }

  #releaseCapture(capture: Capture, portName: string): void {
    capture.ports.delete(portName);
    if (--capture.users === 0) {
      capture.writer.close();
      this.#captures.delete(capture.path);
    }
  }
}
