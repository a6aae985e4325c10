/**
 * The Linux socket and errno numbers the libc paths of src/sys (and net/keepalive.ts) use, in one place. They
 * are identical on x86_64 and aarch64 (asm-generic), the two architectures these paths run on.
 */

// Address families, socket types and socket() flags.
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;

// Option levels and options.
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_TYPE = 3;
export const SO_ERROR = 4;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_KEEPALIVE = 9;
export const SO_REUSEPORT = 15;
export const SO_ACCEPTCONN = 30;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;
export const SO_PROTOCOL = 38;
export const SO_DOMAIN = 39;
export const IPPROTO_TCP = 6;
export const TCP_NODELAY = 1;
export const TCP_KEEPIDLE = 4;
export const TCP_KEEPINTVL = 5;
export const TCP_KEEPCNT = 6;
export const SOL_UDP = 17;
export const UDP_SEGMENT = 103;

// send/recv flags and shutdown().
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const SHUT_WR = 1;

// errno values.
export const EPERM = 1;
export const EINTR = 4;
export const EIO = 5;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EINVAL = 22;
export const ENFILE = 23;
export const EMFILE = 24;
export const EPROTO = 71;
export const EAFNOSUPPORT = 97;
export const EADDRINUSE = 98;
export const EADDRNOTAVAIL = 99;
export const ECONNABORTED = 103;
export const ENOBUFS = 105;
export const EINPROGRESS = 115;
