/**
 * alerts: flags every parameter whose mean moved by more than `threshold_std` standard
 * deviations (of the old version), overall or in any segment, and writes them to
 * alerts.csv, largest move first. Standard deviations rather than percentages: a mean near
 * zero makes percentages explode. A parameter constant in the old version moves by Infinity. A small user task: the README's how-to starts here.
 */
import {readFile, writeFile} from 'node:fs/promises';
import {ConfigurationError} from '../src/errors.js';
import {defineTask} from '../src/task-api.js';
import {csvCell, segmentName} from './lib/analysis-figures.js';
import type {AnalysisDocument} from './lib/analyze-sql.js';

/** One alert: a parameter whose mean moved too much in one place. */
interface Alert {
  parameter: string;
  segment: string;
  oldMean: number | null;
  newMean: number | null;
  changeStd: number;
  changePct: number | null;
  psi: number | null;
}


export default defineTask({
  async run(ctx) {
    const threshold = ctx.args['threshold_std'] ?? 0.25;
    if (typeof threshold !== 'number' || !(threshold >= 0)) {
      throw new ConfigurationError(`alerts: expected "threshold_std" to be a number of standard deviations such as 0.25, got ${JSON.stringify(threshold)}.`, {
        hint: 'Set it in pipeline.yaml: alerts: {with: {threshold_std: 0.25}}.',
      });
    }
    const analysis = JSON.parse(await readFile(ctx.input('analyze', 'analysis.json'), 'utf8')) as AnalysisDocument;
    const alerts: Alert[] = [];
    for (const [parameter, figures] of Object.entries(analysis.parameters)) {
      const places = [
        {segment: '(all)', old: figures.old.mean, new: figures.new.mean, std: figures.old.std, pct: figures.mean_change.pct, psi: figures.psi},
        ...figures.segments.map((shift) => ({
          segment: segmentName(shift.segment),
          old: shift.old.mean,
          new: shift.new.mean,
          std: shift.old.std,
          pct: shift.mean_change.pct,
          psi: shift.psi,
        })),
      ];
      for (const place of places) {
        if (place.old === null || place.new === null || place.new === place.old) continue;
        // A parameter constant in the old version (or with one value there) has no spread: any move is infinitely many.
        const changeStd = place.std !== null && place.std > 0 ? (place.new - place.old) / place.std : Math.sign(place.new - place.old) * Infinity;
        if (Math.abs(changeStd) > threshold) {
          alerts.push({parameter, segment: place.segment, oldMean: place.old, newMean: place.new, changeStd, changePct: place.pct, psi: place.psi});
        }
      }
    }
    alerts.sort((a, b) => Math.abs(b.changeStd) - Math.abs(a.changeStd) || a.parameter.localeCompare(b.parameter) || a.segment.localeCompare(b.segment));
    const round = (value: number | null) => (value === null ? null : Number(value.toPrecision(6)));
    const lines = ['parameter,segment,old_mean,new_mean,change_in_old_std,mean_change_pct,psi'];
    for (const alert of alerts) {
      const cells = [alert.parameter, alert.segment, alert.oldMean, alert.newMean, alert.changeStd, alert.changePct, alert.psi];
      lines.push(cells.map((value) => csvCell(value === null ? '' : String(typeof value === 'number' ? round(value) : value))).join(','));
    }
    await writeFile(ctx.output('alerts.csv'), lines.join('\n') + '\n');
    ctx.log.info(`${alerts.length} parameter means moved more than ${threshold} standard deviations`);
    return {rows: alerts.length, details: {alerts: alerts.length, threshold_std: threshold}};
  },
});
