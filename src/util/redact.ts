/**
 * Keeps secrets out of logs, reports and messages: values of environment variables whose
 * names say they are secret, and anything shaped like a private key or bearer token.
 */
const SECRET_NAME = /(TOKEN|SECRET|PASSWORD|PASSWD|PRIVATE_KEY|API_KEY|CREDENTIAL|ACCESS_KEY)/i;

// Named like secrets, but paths to where a secret is: a message naming the file is of use.
const PATH_NAMES = new Set(['GOOGLE_APPLICATION_CREDENTIALS']);

function secretValues(): string[] {
  return Object.entries(process.env)
    .filter(([name, value]) => SECRET_NAME.test(name) && !PATH_NAMES.has(name) && value !== undefined && value.length >= 6)
    .map(([, value]) => value!)
    .sort((a, b) => b.length - a.length);
}

export function redact(text: string): string {
  let result = text;
  for (const value of secretValues()) result = result.split(value).join('[redacted]');
  return result
    .replace(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g, '[redacted private key]')
    .replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/g, '$1 [redacted]')
    .replace(/("private_key"\s*:\s*")[^"]*(")/g, '$1[redacted]$2');
}
