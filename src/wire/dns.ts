/**
 * DNS messages (RFC 1035 section 4), only what a stub resolver needs: build a recursive query for one name and
 * type, and read the A/AAAA records out of a response. Every read is bounds-checked; a malformed response
 * throws DnsFormatError, which the resolver counts as a bad answer from that server.
 */
import { formatIpv6 } from "./ipv6.ts";

export const DNS_HEADER_LEN = 12;
export const DNS_PORT = 53;
export const QTYPE_A = 1;
export const QTYPE_CNAME = 5;
export const QTYPE_AAAA = 28;
export const QCLASS_IN = 1;
/** RFC 1035 2.3.4: labels of at most 63 octets, names of at most 255 octets on the wire. */
export const MAX_LABEL_LEN = 63;
export const MAX_NAME_WIRE_LEN = 255;

export const RCODE_NOERROR = 0;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;

const FLAG_QR = 0x8000;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const POINTER_MASK = 0xc0;
/** Compression pointers followed per name before the name is called a loop. */
const MAX_POINTERS = 32;

export class DnsFormatError extends Error {
  constructor(message: string) {
    super(`malformed DNS message: ${message}`);
    this.name = "DnsFormatError";
  }
}

/** Encodes "example.com" as length-prefixed labels; throws on an empty label or a too long name. */
export function encodeName(name: string): Uint8Array {
  const trimmed = name.endsWith(".") ? name.slice(0, -1) : name;
  const labels = trimmed === "" ? [] : trimmed.split(".");
  const out: number[] = [];
  for (const label of labels) {
    const bytes = new TextEncoder().encode(label);
    if (bytes.length === 0 || bytes.length > MAX_LABEL_LEN) {
      throw new RangeError(`"${name}": each label must be 1..${MAX_LABEL_LEN} characters`);
    }
    out.push(bytes.length, ...bytes);
  }
  out.push(0);
  if (out.length > MAX_NAME_WIRE_LEN) throw new RangeError(`"${name}" is longer than a DNS name may be`);
  return new Uint8Array(out);
}

/** A recursive (RD) query with one question. */
export function buildQuery(id: number, name: string, qtype: number): Uint8Array {
  const qname = encodeName(name);
  const out = new Uint8Array(DNS_HEADER_LEN + qname.length + 4);
  const v = new DataView(out.buffer);
  v.setUint16(0, id);
  v.setUint16(2, FLAG_RD);
  v.setUint16(4, 1); // QDCOUNT
  out.set(qname, DNS_HEADER_LEN);
  v.setUint16(DNS_HEADER_LEN + qname.length, qtype);
  v.setUint16(DNS_HEADER_LEN + qname.length + 2, QCLASS_IN);
  return out;
}

export interface DnsRecord {
  /** Owner name, lower case, without the trailing dot. */
  name: string;
  type: number;
  ttl: number;
  /** Literal address for A/AAAA, target name for CNAME, undefined for other types. */
  data?: string;
}

export interface DnsResponse {
  id: number;
  truncated: boolean;
  rcode: number;
  /** The first question's name and type (a response must echo the query's). */
  question?: { name: string; type: number };
  answers: DnsRecord[];
}

function need(buf: Uint8Array, offset: number, len: number, what: string): void {
  if (offset + len > buf.length) throw new DnsFormatError(`${what} runs past the end (${buf.length} bytes)`);
}

/** Reads a possibly compressed name at `offset`; returns it and the offset just after it in the message. */
export function readName(buf: Uint8Array, offset: number): { name: string; next: number } {
  const labels: string[] = [];
  let pos = offset, next = -1, pointers = 0, wireLen = 0;
  for (;;) {
    need(buf, pos, 1, "name");
    const len = buf[pos];
    if ((len & POINTER_MASK) === POINTER_MASK) {
      need(buf, pos, 2, "compression pointer");
      if (++pointers > MAX_POINTERS) throw new DnsFormatError("compression pointer loop");
      if (next < 0) next = pos + 2;
      pos = ((len & ~POINTER_MASK) << 8) | buf[pos + 1];
      continue;
    }
    if (len & POINTER_MASK) throw new DnsFormatError(`unknown label type 0x${len.toString(16)}`);
    pos++;
    if (len === 0) break;
    need(buf, pos, len, "label");
    wireLen += len + 1;
    if (wireLen > MAX_NAME_WIRE_LEN) throw new DnsFormatError("name longer than 255 octets");
    labels.push(new TextDecoder().decode(buf.subarray(pos, pos + len)).toLowerCase());
    pos += len;
  }
  return { name: labels.join("."), next: next < 0 ? pos : next };
}

function formatRecordData(buf: Uint8Array, type: number, at: number, len: number): string | undefined {
  if (type === QTYPE_A && len === 4) return Array.from(buf.subarray(at, at + 4)).join(".");
  if (type === QTYPE_AAAA && len === 16) return formatIpv6(buf.subarray(at, at + 16));
  if (type === QTYPE_CNAME) return readName(buf, at).name;
  return undefined;
}

/** Parses a response: header, first question, and the answer section (authority/additional are ignored). */
export function parseResponse(buf: Uint8Array): DnsResponse {
  need(buf, 0, DNS_HEADER_LEN, "header");
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const flags = v.getUint16(2);
  if (!(flags & FLAG_QR)) throw new DnsFormatError("not a response (QR=0)");
  const qdcount = v.getUint16(4), ancount = v.getUint16(6);
  let pos = DNS_HEADER_LEN;
  let question: DnsResponse["question"];
  for (let i = 0; i < qdcount; i++) {
    const { name, next } = readName(buf, pos);
    need(buf, next, 4, "question");
    if (i === 0) question = { name, type: v.getUint16(next) };
    pos = next + 4;
  }
  const answers: DnsRecord[] = [];
  const truncated = (flags & FLAG_TC) !== 0;
  for (let i = 0; i < ancount; i++) {
    const { name, next } = readName(buf, pos);
    need(buf, next, 10, "resource record");
    const type = v.getUint16(next), ttl = v.getUint32(next + 4), rdlen = v.getUint16(next + 8);
    need(buf, next + 10, rdlen, "record data");
    answers.push({ name, type, ttl, data: formatRecordData(buf, type, next + 10, rdlen) });
    pos = next + 10 + rdlen;
  }
  return { id: v.getUint16(0), truncated, rcode: flags & 0xf, question, answers };
}

/**
 * The addresses of `type` that answer for `name`, following CNAME chains inside the answer section (a
 * recursive server puts the chain and the final records there).
 */
export function addressesFor(res: DnsResponse, name: string, type: number): string[] {
  let owner = name.toLowerCase().replace(/\.$/, "");
  for (let hops = 0; hops < 16; hops++) {
    const cname = res.answers.find((r) => r.type === QTYPE_CNAME && r.name === owner && r.data);
    if (!cname) break;
    owner = cname.data!;
  }
  return res.answers.filter((r) => r.type === type && r.name === owner && r.data).map((r) => r.data!);
}
