/**
 * Every configuration problem is reported at once, with file:line:column, what was
 * expected, what was found and a fix; exit code 2, no stack trace, nothing written.
 */
import {mkdirSync} from 'node:fs';
import {describe, expect, it} from 'vitest';
import {Project} from './support/project.js';

const TASK = 'export default {async run() {}};\n';

function expectProblems(result: {code: number | null; stderr: string; stdout: string}, lines: string[]): void {
  expect(result.code).toBe(2);
  expect(result.stderr).not.toMatch(/\n\s+at /);
  const count = lines.length === 1 ? '1 problem' : `${lines.length} problems`;
  expect(result.stderr).toBe(`${count} in the configuration:\n${lines.join('\n')}\n`);
}

describe('diagnostics', () => {
  it('suggests a task declared with problems of its own for a misspelt dependency', () => {
    const project = new Project({
      'tasks/t.ts': TASK,
      'pipeline.yaml': 'tasks:\n  extract-old:\n    run: t\n    need: [a]\n    outputs: [x.csv]\n  a:\n    run: t\n    deps: [extrct-old]\n    outputs: [y.csv]\n',
    });
    expectProblems(project.run(['--old', '1', '--new', '2']), [
      'pipeline.yaml:4:5 Unknown key "need" in task "extract-old". Did you mean "deps"?',
      'pipeline.yaml:8:12 Expected "deps" of task "a" to name a task, got "extrct-old". Did you mean "extract-old"?',
    ]);
  });

  it('reports every problem of pipeline.yaml at once, with positions and suggestions', () => {
    const project = new Project({
      'tasks/t.ts': TASK,
      'pipeline.yaml': `settings:
  validation:
    tolerence: {abs: 1}
    chunk_size: lots
  source:
    engine: duckdbb
tasks:
  a:
    run: t
    deps: [extrct-old]
    outputs: [x.csv]
  extract-old:
    run: extrac
    outputs: [x.csv]
    with: {v: "\${oldd}", w: "\${settings.analysis.binz}"}
    inputs: {settings: [analysis.bin]}
  b:
    run: t
    need: [a]
  c:
    run: t
    deps: [b]
  d: {}
  e:
    run: t
    shell: echo hi
  f:
    run: python3 check.py
  g:
    run: t
    cmd: python3 check.py
    colour: blue
`,
    });
    const result = project.run(['--old', '1', '--new', '2']);
    expectProblems(result, [
      'pipeline.yaml:3:5 Unknown setting "tolerence" in "validation". Did you mean "tolerance"?',
      'pipeline.yaml:4:17 Expected a number for "validation.chunk_size", got "lots".',
      'pipeline.yaml:6:13 Expected "source.engine" to be one of duckdb, bigquery, got "duckdbb". Did you mean "duckdb"?',
      'pipeline.yaml:10:12 Expected "deps" of task "a" to name a task, got "extrct-old". Did you mean "extract-old"?',
      'pipeline.yaml:13:10 Task "extract-old" runs "extrac", but there is no module tasks/extrac.ts (nor .mts, .js or .mjs; looked in the project\'s tasks/ and the built-in tasks). Did you mean "extract"?',
      'pipeline.yaml:14:15 Output "x.csv" of task "extract-old" is also an output of task "a" (pipeline.yaml:11:14); both would be written to the same folder. Rename one, or mark the task "intermediate: true".',
      'pipeline.yaml:15:15 Task "extract-old": Unknown reference "${oldd}". Expected ${old}, ${new}, ${settings.PATH}, ${input:TASK/FILE} or ${output:FILE}.',
      'pipeline.yaml:15:29 Task "extract-old" refers to ${settings.analysis.binz}, but setting "analysis.binz" does not exist. Did you mean "analysis.bins"?',
      'pipeline.yaml:16:25 Task "extract-old" declares setting "analysis.bin", which does not exist. Did you mean "analysis.bins"?',
      'pipeline.yaml:19:5 Unknown key "need" in task "b". Did you mean "deps"?',
      'pipeline.yaml:23:3 Task "d" does nothing: add "run" (a module in tasks/) or "shell" (a command).',
      'pipeline.yaml:26:12 Task "e" has both "run" and "shell"; keep one: "run" names a module in tasks/, "shell" is a command.',
      'pipeline.yaml:28:10 Task "f" runs "python3 check.py", but there is no module tasks/python3 check.py.ts (nor .mts, .js or .mjs; looked in the project\'s tasks/ and the built-in tasks). To run a shell command, write it under "shell" instead of "run".',
      'pipeline.yaml:31:5 Unknown key "cmd" in task "g". Did you mean "shell"?',
      'pipeline.yaml:32:5 Unknown key "colour" in task "g". Expected one of: description, run, shell, deps, inputs, tuning, with, outputs, intermediate, tags, cache.',
    ]);
    expect(project.exists('output')).toBe(false);
    expect(project.exists('.cache')).toBe(false);
  });

  it('suggests the key a rule meant, and says a mapping is missing in plain words', () => {
    const project = new Project({
      'tasks/t.ts': TASK,
      'pipeline.yaml':
        'tasks:\n  a: {run: t}\nsettings:\n  validation:\n    rules:\n      - {check: row_count_change, max_pct: 5, sevrity: error}\n' +
        '      - {check: null_rate_change, max_pc: 2, severity: warn}\n      - {check: row_count_change, max_pct: 5, severity: error, colum: x}\n',
    });
    // Suggestions come from the shape of the rule's own check.
    expectProblems(project.run(['--old', '1', '--new', '2']), [
      'pipeline.yaml:6:47 Unknown setting "sevrity" in "validation.rules[0]". Did you mean "severity"?',
      'pipeline.yaml:7:9 Missing "validation.rules[1].max_pp": expected a number.',
      'pipeline.yaml:7:35 Unknown setting "max_pc" in "validation.rules[1]". Did you mean "max_pp"?',
      'pipeline.yaml:8:64 Unknown setting "colum" in "validation.rules[2]". Expected one of: check, max_pct, severity.',
    ]);
    project.write({'pipeline.yaml': 'settings: {}\n'});
    expectProblems(project.run(['--old', '1', '--new', '2']), ['pipeline.yaml:1:1 Missing "tasks": expected a mapping.']);
  });

  it('names every edge of a dependency cycle', () => {
    const project = new Project({
      'tasks/t.ts': TASK,
      'pipeline.yaml': `tasks:
  a: {run: t, deps: [c]}
  b: {run: t, deps: [a]}
  c: {run: t, deps: [b]}
  self: {run: t, deps: [self]}
`,
    });
    expectProblems(project.run(['--old', '1', '--new', '2']), [
      'pipeline.yaml:2:22 Dependency cycle: a -> c -> b -> a ("a" needs "c" at pipeline.yaml:2:22; "c" needs "b" at pipeline.yaml:4:22; "b" needs "a" at pipeline.yaml:3:22). Remove one of these deps.',
      'pipeline.yaml:5:25 Dependency cycle: self -> self ("self" needs "self" at pipeline.yaml:5:25). Remove one of these deps.',
    ]);
  });

  it('refuses task names that are not plain names (a name is also a folder name)', () => {
    const project = new Project({
      'tasks/t.ts': TASK,
      'pipeline.yaml': `settings: {output: {save_intermediates: true}}
tasks:
  "../../escape": {shell: "echo hi > \${output:y.txt}", outputs: [y.txt], intermediate: true}
  bad name: {run: t}
`,
    });
    expectProblems(project.run(['--old', '1', '--new', '2']), [
      'pipeline.yaml:3:3 Expected each name in "tasks" to be a task name of letters, digits, ".", "_" and "-", got "../../escape".',
      'pipeline.yaml:4:3 Expected each name in "tasks" to be a task name of letters, digits, ".", "_" and "-", got "bad name".',
    ]);
    expect(project.exists('../escape.y.txt')).toBe(false);
  });

  it("refuses an output named like the run's log file, and a log file named like the runner's own files", () => {
    const project = new Project({'tasks/t.ts': TASK, 'pipeline.yaml': 'tasks:\n  a: {run: t, outputs: [validation.log]}\n  b: {run: t, outputs: [b.csv]}\n'});
    const clash = (line: number, output: string, task: string) =>
      `pipeline.yaml:${line}:25 Output "${output}" of task "${task}" is the run's log file (logging.file); choose another name, or set logging.file to another.`;
    expectProblems(project.run(['--old', '1', '--new', '2']), [clash(2, 'validation.log', 'a')]);
    expectProblems(project.run(['--old', '1', '--new', '2', '--set', 'logging.file=b.csv']), [clash(3, 'b.csv', 'b')]);
    expectProblems(project.run(['--old', '1', '--new', '2', '--set', 'logging.file=summary.json']), [
      '--set logging.file=summary.json Expected "logging.file" to have a name other than summary.json, errors.json and .outputs.json, which the runner writes.',
    ]);
    project.write({'pipeline.yaml': 'tasks:\n  a: {run: t, outputs: [.outputs.json]}\n'});
    expectProblems(project.run(['--old', '1', '--new', '2']), ['pipeline.yaml:2:25 Output ".outputs.json" of task "a" is written by the runner itself; choose another name.']);
  });

  it('refuses an output named like an intermediate that output.save_intermediates publishes', () => {
    const project = new Project({
      'tasks/t.ts': TASK,
      'pipeline.yaml': 'tasks:\n  a: {run: t, outputs: [rows.csv], intermediate: true}\n  b: {run: t, outputs: [a.rows.csv]}\n',
    });
    // Without save_intermediates, a's file is not published: no clash.
    expect(project.run(['--old', '1', '--new', '2', '--dry-run']).code).toBe(0);
    expectProblems(project.run(['--old', '1', '--new', '2', '--set', 'output.save_intermediates=true']), [
      'pipeline.yaml:3:25 Output "a.rows.csv" of task "b" is also the intermediate output "rows.csv" of task "a", published under that name by output.save_intermediates (pipeline.yaml:2:24); both would be written to the same folder. Rename one.',
    ]);
  });

  it('checks shell references to inputs and outputs', () => {
    const project = new Project({
      'tasks/t.ts': TASK,
      'pipeline.yaml': `tasks:
  a: {run: t, outputs: [a.txt]}
  b:
    shell: cat \${input:a/b.txt} \${input:c/x} > \${output:out.txt}
    deps: [a]
    outputs: [b.txt]
  c: {run: t, outputs: [x]}
`,
    });
    expectProblems(project.run(['--old', '1', '--new', '2']), [
      'pipeline.yaml:4:12 Task "b" refers to ${input:a/b.txt}, but task "a" has no output "b.txt". Did you mean "a.txt"?',
      'pipeline.yaml:4:12 Task "b" refers to ${input:c/x}, but "c" is not in its "deps". Add it to "deps".',
      'pipeline.yaml:4:12 Task "b" refers to ${output:out.txt}, but "out.txt" is not in its "outputs". Declare it in "outputs".',
    ]);
  });

  it('checks references in inputs.files before the run, as in shell and with', () => {
    const project = new Project({
      'pipeline.yaml': 'tasks:\n  f:\n    shell: "true"\n    inputs: {files: ["${oldd}.csv", "${settings.nope.x}", "${input:f/x}", "data/${old}.csv"]}\n',
    });
    expectProblems(project.run(['--old', '1', '--new', '2']), [
      'pipeline.yaml:4:22 Task "f": Unknown reference "${oldd}". Expected ${old}, ${new}, ${settings.PATH}, ${input:TASK/FILE} or ${output:FILE}.',
      'pipeline.yaml:4:37 Task "f" refers to ${settings.nope.x}, but setting "nope.x" does not exist.',
      'pipeline.yaml:4:59 Task "f": ${input:f/x} can only be used in "shell"; a module gets its paths from ctx.input() and ctx.output().',
    ]);
    project.write({'pipeline.yaml': 'tasks:\n  f:\n    shell: "true"\n    inputs: {files: ["${settings.duckdb.path}.csv", "${settings.source.keys}.csv"]}\n'});
    expectProblems(project.run(['--old', '1', '--new', '2']), [
      'pipeline.yaml:4:22 Task "f" refers to ${settings.duckdb.path} in a file name, but it is null; a file name needs text or a number.',
      'pipeline.yaml:4:53 Task "f" refers to ${settings.source.keys} in a file name, but it is a list; a file name needs text or a number.',
    ]);
    project.write({'pipeline.yaml': 'tasks:\n  f: {shell: "echo ${HOME}"}\n'});
    expectProblems(project.run(['--old', '1', '--new', '2']), [
      'pipeline.yaml:2:14 Task "f": Unknown reference "${HOME}". Expected ${old}, ${new}, ${settings.PATH}, ${input:TASK/FILE} or ${output:FILE}. For a variable of the shell, write $HOME (without braces).',
    ]);
    // An expansion of the shell's own is escaped as $${...}, and reaches the shell as written.
    project.write({'pipeline.yaml': 'tasks:\n  f: {shell: "f=a.csv; echo ${f%.csv}"}\n'});
    expectProblems(project.run(['--old', '1', '--new', '2']), [
      'pipeline.yaml:2:14 Task "f": Unknown reference "${f%.csv}". Expected ${old}, ${new}, ${settings.PATH}, ${input:TASK/FILE} or ${output:FILE}. To pass it to the shell as it is, write $${f%.csv}.',
    ]);
    // A misspelt kind of reference is no shell expansion: no advice to escape it.
    project.write({'pipeline.yaml': 'tasks:\n  f: {shell: "cat ${inptu:make/x.txt}"}\n'});
    expectProblems(project.run(['--old', '1', '--new', '2']), [
      'pipeline.yaml:2:14 Task "f": Unknown reference "${inptu:make/x.txt}". Expected ${old}, ${new}, ${settings.PATH}, ${input:TASK/FILE} or ${output:FILE}.',
    ]);
    project.write({'pipeline.yaml': 'tasks:\n  f: {shell: "f=a.csv; echo $${f%.csv} > ${output:f.txt}", outputs: [f.txt]}\n'});
    expect(project.run(['--old', '1', '--new', '2']).code).toBe(0);
    expect(project.read('output/1_vs_2/f.txt')).toBe('a\n');
    project.write({'pipeline.yaml': 'tasks:\n  f: {shell: "echo $HOME"}\n'});
    mkdirSync(project.path('settings.d'));
    expectProblems(project.run(['--old', '1', '--new', '2', '--config', 'settings.d']), [
      '--config The config file "settings.d" is a folder. Pass the path of a JSON or YAML settings file.',
    ]);
  });

  it('reports malformed YAML with its position', () => {
    const project = new Project({'pipeline.yaml': 'tasks:\n  a:\n    run: t\n   deps: [x]\n'});
    expectProblems(project.run(['--old', '1', '--new', '2']), ['pipeline.yaml:4:1 Invalid YAML: All mapping items must start at the same column']);
  });

  it('reports problems of every settings layer where the value was written', () => {
    const project = new Project({
      'tasks/t.ts': TASK,
      // Rules here too: a list in a higher layer replaces this one, so problems inside the
      // config file's list are reported there, not at the same positions in this file.
      'pipeline.yaml': 'settings:\n  validation:\n    rules:\n      - {check: row_count_change, max_pct: 5}\n      - {check: changed_rows, max_pct: 25}\ntasks:\n  a: {run: t}\n',
      'list.json': '[1, 2]\n',
      'broken.json': '{"a": \n',
      'lenient.json': '{"analysis": {"bins": 12,}}\n',
      'settings.yaml': 'validation:\n  rules:\n    - {check: row_count_chnage, max_pct: 5}\n    - {check: changed_rows}\n',
    });
    expectProblems(project.run(['--old', '1', '--new', '2', '--config', 'list.json']), [
      'list.json:1:1 Expected the config file to be a mapping of settings (JSON object or YAML mapping), got a list.',
    ]);
    expectProblems(project.run(['--old', '1', '--new', '2', '--config', 'broken.json']), ['broken.json:1:7 Invalid JSON: Flow map must end with a }']);
    // YAML would take the trailing comma; a .json file is held to JSON.
    expectProblems(project.run(['--old', '1', '--new', '2', '--config', 'lenient.json']), ['lenient.json:1:26 Invalid JSON: Expected double-quoted property name']);
    expectProblems(project.run(['--old', '1', '--new', '2', '--config', 'missing.yaml']), [
      '--config The config file "missing.yaml" does not exist. Pass the path of a JSON or YAML settings file.',
    ]);
    expectProblems(project.run(['--old', '1', '--new', '2', '--config', 'settings.yaml']), [
      'settings.yaml:3:15 Expected "validation.rules[0].check" to be one of row_count_change, added_keys, removed_keys, duplicate_keys, changed_rows, null_rate_change, schema_unchanged, max_abs_diff, got "row_count_chnage". Did you mean "row_count_change"?',
      'settings.yaml:4:7 Missing "validation.rules[1].max_pct": expected a number.',
    ]);
    expectProblems(project.run(['--old', '1', '--new', '2', '--set', 'bigquery.api_endpoint=127.0.0.1:9050']), [
      '--set bigquery.api_endpoint=127.0.0.1:9050 Expected "bigquery.api_endpoint" to be a URL with its scheme, such as http://127.0.0.1:9050, got "127.0.0.1:9050".',
    ]);
    expectProblems(project.run(['--old', '1', '--new', '2', '--set', 'performance.timeout=soon', '--set', 'nonsense']), [
      '--set nonsense Expected --set PATH=VALUE, such as --set validation.tolerance.abs=0.01, got "nonsense".',
      '--set performance.timeout=soon Expected a number for "performance.timeout", got "soon".',
    ]);
    // A shortening of one value is suggested as well as a typo.
    expectProblems(project.run(['--old', '1', '--new', '2', '--set', 'logging.level=WARN']), [
      '--set logging.level=WARN Expected "logging.level" to be one of DEBUG, INFO, WARNING, ERROR, got "WARN". Did you mean "WARNING"?',
    ]);
    expectProblems(project.run(['--old', '1', '--new', '2', '--set', 'validation.rules=[{"check": "removed_keys", "severity": "warn"}]']), [
      '--set validation.rules=[{"check": "removed_keys", "severity": "warn"}] Expected "validation.rules[0]" to have a limit: "max", "max_pct" or both.',
    ]);
    expectProblems(project.run(['--old', '1', '--new', '2', '--set', 'validation.mismatch_table=all mismatches']), [
      '--set validation.mismatch_table=all mismatches Expected "validation.mismatch_table" to be a BigQuery table, dataset.table or project.dataset.table (letters, digits, _ and - in the table name), got "all mismatches".',
    ]);
    expectProblems(project.run(['--old', '1', '--new', '2', '--set', 'analysis.segment_by=region']), [
      '--set analysis.segment_by=region Expected a list for "analysis.segment_by", got "region". For a list of one, write [region].',
    ]);
    expectProblems(project.run(['--old', '1', '--new', '2', '--set', 'analysis.psi.warn=0.3']), [
      '--set analysis.psi.warn=0.3 Expected "analysis.psi" to have "warn" at most "fail" (a PSI from "warn" up is a moderate drift, from "fail" up a major one).',
    ]);
    expectProblems(project.run(['--old', '1', '--new', '2'], {PIPELINE_PERFORMANCE_MAX_MEMORY: 'lots'}), [
      'environment variable PIPELINE_PERFORMANCE_MAX_MEMORY Expected "performance.max_memory" to be a size such as "4G", "512MB" or "2GiB", got "lots".',
    ]);
    expectProblems(project.run(['--old', '1', '--new', '2', '--set', 'performance.max_memory=4']), [
      '--set performance.max_memory=4 Expected "performance.max_memory" to be a size such as "4G", "512MB" or "2GiB" (with its unit), got 4.',
    ]);
    expectProblems(project.run(['--old', '1', '--new', '2', '--set', 'performance.max_memory=0G']), ['--set performance.max_memory=0G Expected "performance.max_memory" to have at least 64MB.']);
    // Other tools' PIPELINE_* variables are left alone; one a typo away from a section is pointed out.
    const misspelt = project.run(['--old', '1', '--new', '2'], {PIPELINE_VALIDATON_ENGINE: 'bigquery', PIPELINE_BUILD_NUMBER: '7'});
    expect(misspelt.code).toBe(0);
    expect(misspelt.stderr).toBe(
      'Warning: Environment variable PIPELINE_VALIDATON_ENGINE is not read: "validaton" is not a settings section. Did you mean PIPELINE_VALIDATION_ENGINE?\n',
    );
  });

  it('takes a logging.format starting with % from --set and the environment, without a warning', () => {
    const project = new Project({'tasks/t.ts': TASK, 'pipeline.yaml': 'tasks:\n  a: {run: t}\n'});
    for (const [args, env] of [[['--set', 'logging.format=%(levelname)s: %(message)s'], {}], [[], {PIPELINE_LOGGING_FORMAT: '%(levelname)s: %(message)s'}]] as const) {
      const result = project.run(['--old', '1', '--new', '2', ...args], env);
      expect(result.code).toBe(0);
      expect(result.stderr).toBe('');
      expect(project.read('output/1_vs_2/validation.log').split('\n')[0]).toMatch(/^INFO: run 1 vs 2 in /);
    }
  });

  it('refuses bad versions and flags with exit code 2', () => {
    const project = new Project({'tasks/t.ts': TASK, 'pipeline.yaml': 'tasks:\n  a: {run: t}\n'});
    const injection = project.run(['--old', "0.1' OR '1'='1", '--new', '2']);
    expect(injection.code).toBe(2);
    expect(injection.stderr).toBe(
      'Error: Invalid --old "0.1\' OR \'1\'=\'1": a version is letters, digits, ".", "_" and "-" (at most 64), such as 0.3615.\n',
    );
    const missing = project.run(['--old', '1']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('Error: Missing --new: pass the version to compare, such as --new 0.3615.\n');
    const empty = project.run(['--old', '', '--new', '2']);
    expect(empty.stderr).toBe('Error: Missing --old: pass the version to compare, such as --old 0.3615.\n');
    const noFolder = project.run(['--old', '1', '--new', '2', '--output-dir', '']);
    expect(noFolder.code).toBe(2);
    expect(noFolder.stderr).toBe('Error: Option --output-dir needs a value, got an empty one.\nRun with --help to see every option.\n');
    const flag = project.run(['--old', '1', '--new', '2', '--sett', 'x']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toBe('Error: Unknown option \'--sett\'. Did you mean "--set"?\nRun with --help to see every option.\n');
    // An option of another command is refused, not ignored.
    const misplaced = project.run(['--old', '1', '--new', '2', '--format', 'dot']);
    expect(misplaced.code).toBe(2);
    expect(misplaced.stderr).toBe('Error: --format is not an option of a run.\nRun with --help to see which options each command takes.\n');
    expect(project.run(['cache', 'status', '--old', '1']).stderr).toBe('Error: --old is not an option of the cache status command.\nRun with --help to see which options each command takes.\n');
    expect(project.run(['cache', 'status', '--max-size', '5G']).stderr).toBe('Error: --max-size is not an option of the cache status command.\nRun with --help to see which options each command takes.\n');
    const command = project.run(['grpah']);
    expect(command.code).toBe(2);
    expect(command.stderr).toBe('Error: Unknown command "grpah". Did you mean "graph"?\nRun with --help to see the commands.\n');
    const only = project.run(['--old', '1', '--new', '2', '--only', 'b']);
    expect(only.code).toBe(2);
    expect(only.stderr).toBe('Error: --only b: no task or tag of that name. Did you mean "a"?\nThe tasks are a.\n');
    project.write({'pipeline.yaml': 'tasks:\n  a: {run: t, tags: [analysis]}\n  b: {run: t, deps: [a]}\n'});
    const nothing = project.run(['--old', '1', '--new', '2', '--only', 'a', '--skip-analysis']);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toBe('Error: --only asks for a, which --skip-analysis leaves out.\nDrop one of the two.\n');
    const needing = project.run(['--old', '1', '--new', '2', '--only', 'b', '--skip-analysis']);
    expect(needing.code).toBe(2);
    expect(needing.stderr).toBe('Error: --only asks for b (it needs a), which --skip-analysis leaves out.\nDrop one of the two.\n');
    expect(project.exists('output')).toBe(false);
  });

  it('loads the example configuration of the original specification as it is', () => {
    const project = new Project({
      'tasks/t.ts': 'import {writeFileSync} from "node:fs";\nexport default {async run(ctx) { writeFileSync(ctx.output("s.json"), JSON.stringify(ctx.settings)); }};\n',
      'pipeline.yaml': 'tasks:\n  a: {run: t, inputs: {settings: [bigquery.project_id, validation, output, logging.level, performance]}, outputs: [s.json]}\n',
      'custom_config.json': JSON.stringify({
        bigquery: {project_id: 'your-project', dataset_id: 'your-dataset', table_id: 'your-table'},
        validation: {chunk_size: 10000, parallel_processing: true},
        output: {base_dir: 'output', save_intermediates: false},
        logging: {level: 'INFO', format: '%(asctime)s - %(levelname)s - %(message)s', file: 'validation.log'},
        performance: {max_memory: '4G', timeout: 3600, retry_count: 3},
      }),
    });
    const result = project.run(['--config', 'custom_config.json', '--old-version', '0.3615', '--new-version', '0.3621']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const seen = project.json<Record<string, Record<string, unknown>>>('output/0.3615_vs_0.3621/s.json');
    expect(seen['bigquery']).toEqual({project_id: 'your-project'});
    expect(seen['performance']).toEqual({max_memory: '4G', timeout: 3600, retry_count: 3, retry_delay: 0.02});
    expect(project.read('output/0.3615_vs_0.3621/validation.log')).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - INFO - run 0\.3615 vs 0\.3621/);
  });
});
