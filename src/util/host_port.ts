/**
 * `host:port` as every log line, error, status field and URL writes it: an IPv6 address in brackets
 * (`[fd00::1]:80`), so the port cannot be read as part of the address (`fd00::1:80` is an address). One
 * function, so no site forgets the brackets. `port` may be a range (`60000-60099`).
 */
export function joinHostPort(host: string, port: number | string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
}
