/** Sizes and durations as users write them: `5G`, `512MB`, `30d`, `12h`. */
import {ConfigurationError} from '../errors.js';

const SIZE_UNITS: Record<string, number> = {'': 1, B: 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40};

export function parseBytes(text: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?$/i.exec(text.trim());
  if (match === null) throw new ConfigurationError(`Expected ${what} to be a size such as 5G or 512MB, got "${text}".`);
  return Number(match[1]) * SIZE_UNITS[match[2]!.toUpperCase()]!;
}

const DURATION_UNITS: Record<string, number> = {s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000};

export function parseDuration(text: string, what: string): number {
  if (text.trim() === '0') return 0;
  const match = /^(\d+(?:\.\d+)?)\s*([smhdw])$/i.exec(text.trim());
  if (match === null) throw new ConfigurationError(`Expected ${what} to be a duration such as 30d, 12h or 90m, got "${text}".`);
  return Number(match[1]) * DURATION_UNITS[match[2]!.toLowerCase()]!;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
