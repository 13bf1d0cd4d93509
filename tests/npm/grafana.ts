// The type a committed dashboard (grafana/dashboards/*.json) must satisfy, built from Grafana's
// own published schema, @grafana/schema (pinned in package.json). tests/test_grafana_schema.py
// writes each dashboard as `export const dashboard: CheckedDashboard = <its JSON>;` and runs
// `tsc --noEmit --strict`: a wrong field type, a value outside an enum or an unknown field
// (TypeScript's excess-property check on object literals) is an error.
//
// Which Dashboard: the package root's `Dashboard` (veneer/dashboard.types over the generated
// raw/dashboard/x/types.gen), the classic JSON model with `schemaVersion`, `panels` and
// `templating` that Grafana imports, provisions from files and serves on /api/dashboards. Our
// files are that model (schemaVersion 41). The `apis/dashboard.grafana.app/v2*` types describe
// another document, the v2 resource (`elements` plus a `layout`, under a Kubernetes-style
// `spec`), which these files are not, and `v0alpha1`/`v1beta1` wrap the classic model as an
// untyped `spec`, so they would check nothing.
//
// On top of that root type, two things make the check stricter, and one thing is allowed:
// - each panel's `options` and `fieldConfig.defaults.custom` are checked against its plugin's
//   generated types (raw/composable/<plugin>/panelcfg), where the root type has
//   Record<string, unknown>; Grafana fills options left out with defaults, hence Partial<>;
//   a panel type missing from PanelByType is an error (Grafana would show "unknown panel");
// - `Wire<T>` maps the schema's TypeScript string enums to the union of their values:
//   JSON carries the value ("absolute"), which a TS enum type accepts only as a member
//   (ThresholdsMode.Absolute), so without it every enum field would fail. Numeric enums
//   accept their numbers already; any other value is still an error.
// - LEGACY lists fields that the pinned grafana-foundation-sdk writes and Grafana still
//   reads, but that this schema version no longer declares; each is typed with the shape
//   Grafana reads, so it is still checked.

import type {
  Dashboard,
  FieldConfig,
  FieldConfigSource,
  Panel,
  RowPanel,
  VariableModel,
} from '@grafana/schema';
import type * as barchart from '@grafana/schema/dist/esm/raw/composable/barchart/panelcfg/x/BarChartPanelCfg_types.gen';
import type * as bargauge from '@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen';
import type * as gauge from '@grafana/schema/dist/esm/raw/composable/gauge/panelcfg/x/GaugePanelCfg_types.gen';
import type * as heatmap from '@grafana/schema/dist/esm/raw/composable/heatmap/panelcfg/x/HeatmapPanelCfg_types.gen';
import type * as histogram from '@grafana/schema/dist/esm/raw/composable/histogram/panelcfg/x/HistogramPanelCfg_types.gen';
import type * as logs from '@grafana/schema/dist/esm/raw/composable/logs/panelcfg/x/LogsPanelCfg_types.gen';
import type * as piechart from '@grafana/schema/dist/esm/raw/composable/piechart/panelcfg/x/PieChartPanelCfg_types.gen';
import type * as stat from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type * as statetimeline from '@grafana/schema/dist/esm/raw/composable/statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen';
import type * as statushistory from '@grafana/schema/dist/esm/raw/composable/statushistory/panelcfg/x/StatusHistoryPanelCfg_types.gen';
import type * as table from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';
import type * as text from '@grafana/schema/dist/esm/raw/composable/text/panelcfg/x/TextPanelCfg_types.gen';
import type * as timeseries from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';

/** T as it is written in JSON: string enums as the union of their values, recursively. */
export type Wire<T> =
  T extends string ? `${T}` :
  T extends ReadonlyArray<infer U> ? Array<Wire<U>> :
  T extends object ? { [K in keyof T]: Wire<T[K]> } :
  T;

/** No plugin field config: `custom` may only be empty. */
type NoCustom = Record<string, never>;

/** Fields Grafana reads but this schema version no longer declares (see the header). */
interface LEGACY {
  // Table footer: @grafana/schema 13 moved it to fieldConfig.defaults.custom.footer; Grafana
  // still migrates the panel-level options.footer that the foundation SDK writes (the table
  // plugin's migrateFooterV2).
  tableOptions: {
    footer?: {
      show?: boolean;
      reducer?: string[];
      fields?: string | string[];
      countRows?: boolean;
      enablePagination?: boolean;
    };
  };
  // Interval-variable settings the foundation SDK writes on every variable; Grafana reads them
  // on interval variables and ignores them elsewhere.
  variable: { auto?: boolean; auto_count?: number; auto_min?: string };
}

/** The root Panel with `type`, `options` and `custom` field config of one plugin. */
type PanelOf<TType extends string, TOptions, TCustom> =
  Omit<Wire<Panel>, 'type' | 'options' | 'fieldConfig'> & {
    type: TType;
    options?: Wire<Partial<TOptions>>;
    fieldConfig?: Omit<Wire<FieldConfigSource>, 'defaults'> & {
      defaults: Omit<Wire<FieldConfig>, 'custom'> & { custom?: Wire<Partial<TCustom>> };
    };
  };

interface PanelByType {
  barchart: PanelOf<'barchart', barchart.Options, barchart.FieldConfig>;
  bargauge: PanelOf<'bargauge', bargauge.Options, NoCustom>;
  gauge: PanelOf<'gauge', gauge.Options, NoCustom>;
  heatmap: PanelOf<'heatmap', heatmap.Options, heatmap.FieldConfig>;
  histogram: PanelOf<'histogram', histogram.Options, histogram.FieldConfig>;
  logs: PanelOf<'logs', logs.Options, NoCustom>;
  piechart: PanelOf<'piechart', piechart.Options, piechart.FieldConfig>;
  stat: PanelOf<'stat', stat.Options, NoCustom>;
  'state-timeline': PanelOf<'state-timeline', statetimeline.Options, statetimeline.FieldConfig>;
  'status-history': PanelOf<'status-history', statushistory.Options, statushistory.FieldConfig>;
  table: PanelOf<'table', table.Options & LEGACY['tableOptions'], table.FieldConfig>;
  text: PanelOf<'text', text.Options, NoCustom>;
  timeseries: PanelOf<'timeseries', timeseries.Options, timeseries.FieldConfig>;
}

export type CheckedPanel = PanelByType[keyof PanelByType];

export type CheckedRow = Omit<Wire<RowPanel>, 'panels'> & { panels: CheckedPanel[] };

export type CheckedVariable = Wire<VariableModel> & LEGACY['variable'];

export type CheckedDashboard = Omit<Wire<Dashboard>, 'panels' | 'templating'> & {
  panels?: Array<CheckedPanel | CheckedRow>;
  templating?: { list?: CheckedVariable[] };
};
