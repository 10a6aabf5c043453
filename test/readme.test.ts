/** The README's examples run as written. */
import {execFileSync} from 'node:child_process';
import {copyFileSync, readFileSync} from 'node:fs';
import {join} from 'node:path';
import {describe, expect, it} from 'vitest';
import {CLI, cliEnv, Project, REPO} from './support/project.js';

const README = readFileSync(join(REPO, 'README.md'), 'utf8');

/** The first fenced block of `language` after `heading`. */
function block(heading: string, language: string): string {
  const section = README.slice(README.indexOf(heading));
  const match = new RegExp('```' + language + '\\n([\\s\\S]*?)```').exec(section);
  if (match === null) throw new Error(`README has no ${language} block after ${heading}`);
  return match[1]!;
}

describe('README', () => {
  it('starts with the two set-up commands', () => {
    expect(block('# Version validation pipeline', 'bash')).toBe(
      'npm install && npm run pipeline -- --old 0.3615 --new 0.3621\nnpm install && npm test\n',
    );
  });

  it('the library example runs', () => {
    const project = new Project({});
    copyFileSync(join(REPO, 'pipeline.yaml'), project.path('pipeline.yaml'));
    const code = block('## Library API', 'ts').replace("'./src/index.js'", JSON.stringify(join(REPO, 'src/index.ts')));
    project.write({'example.ts': code});
    const output = execFileSync(process.execPath, ['--import', join(REPO, 'node_modules/tsx/dist/loader.mjs'), 'example.ts'], {
      cwd: project.dir,
      env: cliEnv(),
      encoding: 'utf8',
    });
    expect(output).toContain("warn [\n  'extract-old: ran',");
    expect(output).toContain("'row-delta: ran'");
    expect(project.read('output/0.3615_vs_0.3621/row-delta.txt')).toBe('114');
  });

  it('the shell task example runs', () => {
    const project = new Project({});
    const shipped = readFileSync(join(REPO, 'pipeline.yaml'), 'utf8');
    const example = block('A shell task needs no code', 'yaml');
    project.write({'pipeline.yaml': `${shipped.trimEnd()}\n\n${example}`});
    const result = project.run(['--old', '0.3615', '--new', '0.3621']);
    expect(result.code, result.stdout + result.stderr).toBeLessThan(2);
    const lines = Number(project.read('output/0.3615_vs_0.3621/mismatch-lines.txt').trim());
    expect(lines).toBe(project.read('output/0.3615_vs_0.3621/mismatches.csv').split('\n').length - 1);
  });

  it('the help text lists every option the README documents', () => {
    const help = execFileSync(process.execPath, [CLI, '--help'], {encoding: 'utf8'});
    for (const option of README.matchAll(/^\| `(--[a-z-]+)/gm)) expect(help).toContain(option[1]!);
  });
});
