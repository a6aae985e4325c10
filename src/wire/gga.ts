/**
 * NMEA 0183 GGA sentence (Global Positioning System Fix Data), as NTRIP clients send it to a caster so VRS and
 * nearest-station mountpoints know where the rover is:
 *
 *   $GPGGA,hhmmss.ss,ddmm.mmmm,N,dddmm.mmmm,E,1,12,1.0,alt,M,0.0,M,,*CS<CR><LF>
 *
 * fields: UTC time, latitude (degrees and minutes) N/S, longitude E/W, fix quality 1 (GPS fix), satellites 12,
 * HDOP 1.0, altitude above mean sea level in metres, geoid separation 0.0 m, empty age and station of
 * differential data. CS is the XOR of every character between `$` and `*`, as two uppercase hex digits.
 * Time comes from the caller (an injected clock), never from this file.
 */

export type GgaTalker = "GP" | "GN";

export interface GgaFix {
  /** GP (GPS) or GN (any GNSS combination). */
  talker: GgaTalker;
  /** Wall-clock time, milliseconds since the Unix epoch (only the UTC time of day is sent). */
  timeMs: number;
  /** Degrees, north positive, -90..90. */
  latDeg: number;
  /** Degrees, east positive, -180..180. */
  lonDeg: number;
  /** Metres above mean sea level. */
  altM: number;
}

/** Fix quality 1 = GPS fix, 12 satellites, HDOP 1.0: a plausible rover; casters only look at the position. */
const FIX_QUALITY = "1";
const SATELLITES = "12";
const HDOP = "1.0";
const GEOID_SEPARATION = "0.0";
/** Minutes are sent with 4 decimals: positions are rounded to 1/10000 of a minute (about 0.19 m). */
const MINUTE_DECIMALS = 4;
const TEN_THOUSANDTHS_PER_DEGREE = 60 * 10 ** MINUTE_DECIMALS;

/** XOR of the characters of `body` (the text between `$` and `*`), as two uppercase hex digits. */
export function nmeaChecksum(body: string): string {
  let x = 0;
  for (let i = 0; i < body.length; i++) x ^= body.charCodeAt(i) & 0xff;
  return x.toString(16).toUpperCase().padStart(2, "0");
}

/** `hhmmss.ss` of the UTC time of day. */
export function ggaTime(timeMs: number): string {
  const day = ((Math.floor(timeMs) % 86_400_000) + 86_400_000) % 86_400_000;
  const hh = Math.floor(day / 3_600_000);
  const mm = Math.floor(day / 60_000) % 60;
  const ss = Math.floor(day / 1000) % 60;
  const cs = Math.floor((day % 1000) / 10);
  return `${two(hh)}${two(mm)}${two(ss)}.${two(cs)}`;
}

/**
 * `ddmm.mmmm` (latitude, degreeDigits 2) or `dddmm.mmmm` (longitude, 3) of |deg|, rounded to the last minute
 * decimal in integers so 59.99995' becomes the next degree instead of "60.0000".
 */
export function ggaDegreesMinutes(deg: number, degreeDigits: 2 | 3): string {
  const units = Math.round(Math.abs(deg) * TEN_THOUSANDTHS_PER_DEGREE);
  const whole = Math.floor(units / TEN_THOUSANDTHS_PER_DEGREE);
  const rest = units - whole * TEN_THOUSANDTHS_PER_DEGREE;
  const minutes = Math.floor(rest / 10 ** MINUTE_DECIMALS);
  const fraction = rest % 10 ** MINUTE_DECIMALS;
  return `${String(whole).padStart(degreeDigits, "0")}${two(minutes)}.` +
    String(fraction).padStart(MINUTE_DECIMALS, "0");
}

/** The whole sentence, `$` to CR LF. Throws RangeError for a position out of range or a non-finite number. */
export function buildGga(fix: GgaFix): string {
  const { latDeg, lonDeg, altM } = fix;
  if (!Number.isFinite(latDeg) || latDeg < -90 || latDeg > 90) {
    throw new RangeError("latitude not in -90..90");
  }
  if (!Number.isFinite(lonDeg) || lonDeg < -180 || lonDeg > 180) {
    throw new RangeError("longitude not in -180..180");
  }
  if (!Number.isFinite(altM)) throw new RangeError("altitude not a finite number");
  const body = [
    `${fix.talker}GGA`,
    ggaTime(fix.timeMs),
    ggaDegreesMinutes(latDeg, 2),
    latDeg < 0 ? "S" : "N",
    ggaDegreesMinutes(lonDeg, 3),
    lonDeg < 0 ? "W" : "E",
    FIX_QUALITY,
    SATELLITES,
    HDOP,
    altM.toFixed(3),
    "M",
    GEOID_SEPARATION,
    "M",
    "",
    "",
  ].join(",");
  return `$${body}*${nmeaChecksum(body)}\r\n`;
}

function two(n: number): string {
  return String(n).padStart(2, "0");
}
