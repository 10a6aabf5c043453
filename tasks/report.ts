/**
 * The report task: reads validation.json and, unless the analysis was skipped, analysis.json,
 * and writes report.html, one self-contained page a reviewer reads first. It gives no
 * verdict of its own (validate and analyze do); the page shows theirs and the rules behind it.
 */
import {readFile, writeFile} from 'node:fs/promises';
import {ExecutionError} from '../src/errors.js';
import {defineTask} from '../src/task-api.js';
import type {Json} from '../src/task-api.js';
import type {AnalysisDocument} from './lib/analyze-sql.js';
import {documentNumber} from './lib/document-json.js';
import {renderReport} from './lib/report-html.js';
import type {Loose, ValidationDocument} from './lib/report-html.js';

export default defineTask({
  async run(ctx) {
    const validation = numbersOf(await readDocument<ValidationDocument>(ctx.input('validate', 'validation.json'), 'validation.json', 'validate'));
    const analysisPath = ctx.inputs['analyze']?.['analysis.json'];
    const analysis = analysisPath === undefined ? null : await readDocument<AnalysisDocument>(analysisPath, 'analysis.json', 'analyze');
    const upstream = ctx.upstream['analyze'];
    const page = renderReport({
      old: version(ctx.args['old'], 'old'),
      new: version(ctx.args['new'], 'new'),
      validation,
      analysis,
      ...(analysis === null ? {analysisSkipped: upstream?.reason ?? 'skipped on request'} : {}),
      upstream: ctx.upstream,
    });
    await writeFile(ctx.output('report.html'), page);
    const bytes = Buffer.byteLength(page);
    ctx.log.info(`wrote report.html (${bytes} bytes)${analysis === null ? ' without analysis' : ''}`);
    const details: Record<string, Json> = {bytes, analysis: analysis !== null};
    return {details};
  },
});

async function readDocument<T>(path: string, file: string, task: string): Promise<Loose<T>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error: unknown) {
    throw new ExecutionError(`The report could not read ${file} from the ${task} task at ${path}.`, {cause: error, task: 'report'});
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error: unknown) {
    throw new ExecutionError(`Expected ${file} from the ${task} task to be JSON, but it does not parse: ${(error as Error).message}.`, {
      cause: error,
      task: 'report',
      hint: `Rerun the ${task} task (for example after \`pipeline cache clean\`); if it persists, report it with the file.`,
    });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ExecutionError(`Expected ${file} from the ${task} task to hold a JSON object, got ${Array.isArray(parsed) ? 'an array' : String(parsed)}.`, {task: 'report'});
  }
  return parsed as Loose<T>;
}

/** validation.json with the numbers it writes as text (an infinite largest difference) read back as numbers. */
function numbersOf(document: Loose<ValidationDocument>): Loose<ValidationDocument> {
  const columns = Object.fromEntries(
    Object.entries(document.columns ?? {}).map(([name, c]) => [name, {...c, max_abs_diff: documentNumber(c?.max_abs_diff), max_rel_diff: documentNumber(c?.max_rel_diff)}]),
  );
  const rules = (document.rules ?? []).map((rule) => ({...rule, observed: documentNumber(rule?.observed)}));
  return {...document, ...(document.columns === undefined ? {} : {columns}), ...(document.rules === undefined ? {} : {rules})} as Loose<ValidationDocument>;
}

function version(value: Json | undefined, which: 'old' | 'new'): string {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number') return String(value);
  throw new ExecutionError(`Expected the report's "${which}" argument to be a version, got ${JSON.stringify(value ?? null)}.`, {
    task: 'report',
    hint: `Declare it in pipeline.yaml: report: {with: {old: "\${old}", new: "\${new}"}}.`,
  });
}
