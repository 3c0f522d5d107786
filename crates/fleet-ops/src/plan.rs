//! `robofleet plan`: the capacity and cost planner (docs/capacity.md).
//!
//! The arithmetic is in `fleet_capacity::plan`; this is the command around it: the input (a TOML
//! file and flags over the documented example fleet), the price table, and the outputs (the
//! readable report, `--json`, and `--chart`, an SVG of demand against capacity over the day).

use std::path::{Path, PathBuf};

use fleet_capacity::plan::{DayKind, DayPlan, Plan, PlanInput, plan};
use fleet_capacity::prices::Prices;
use fleet_capacity::replay::Sim;
use plotters::prelude::*;

/// Why the planner stopped.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
    #[error("the plan's input is invalid: {0}")]
    Invalid(String),
    #[error("writing {path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// `robofleet plan` flags. Every flag overrides the same key of `--input`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PlanArgs {
    /// A TOML file with `[fleet]`, `[stack]` and `[policy]` tables; every key is optional and
    /// defaults to the example fleet (`--print-input` prints them all).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Robots in the fleet.
    #[arg(long)]
    pub robots: Option<f64>,
    /// Missions per robot per week.
    #[arg(long)]
    pub missions_per_week: Option<f64>,
    /// Robots switched on on Christmas morning (0: no activation wave).
    #[arg(long)]
    pub new_robots: Option<f64>,
    /// The year whose December is planned.
    #[arg(long)]
    pub year: Option<i16>,
    /// The OpenSearch domain's monthly cost, USD (a given, not planned).
    #[arg(long)]
    pub opensearch_usd: Option<f64>,
    /// The account's Lambda concurrency quota.
    #[arg(long)]
    pub account_concurrency: Option<f64>,
    /// A price table with the same keys as the bundled one (crates/fleet-capacity/prices.toml).
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// Also write the plan as JSON to this file (`-`: standard output, instead of the report).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also draw demand against capacity over the day, as SVG, to this file.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Print the resolved input as TOML (a starting point for `--input`) and stop.
    #[arg(long)]
    pub print_input: bool,
}

/// The input `args` resolve to.
pub fn input(args: &PlanArgs) -> Result<PlanInput, PlanError> {
    let mut input = match &args.input {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
                path: path.clone(),
                source,
            })?;
            toml::from_str::<PlanInput>(&text).map_err(|e| PlanError::Input {
                path: path.clone(),
                message: e.to_string(),
            })?
        }
        None => PlanInput::default(),
    };
    if let Some(v) = args.robots {
        input.fleet.robots = v;
    }
    if let Some(v) = args.missions_per_week {
        input.fleet.missions_per_week = v;
    }
    if let Some(v) = args.new_robots {
        if v > 0.0 {
            input
                .fleet
                .christmas
                .get_or_insert_with(Default::default)
                .new_robots = v;
        } else {
            input.fleet.christmas = None;
        }
    }
    if let Some(v) = args.year {
        input.stack.year = v;
    }
    if let Some(v) = args.opensearch_usd {
        input.stack.opensearch_monthly_usd = v;
    }
    if let Some(v) = args.account_concurrency {
        input.stack.account_concurrency = v;
    }
    Ok(input)
}

/// Runs the planner and writes its outputs; returns the plan.
pub fn run(args: &PlanArgs) -> Result<Plan, PlanError> {
    let input = input(args)?;
    let prices = match &args.prices {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
                path: path.clone(),
                source,
            })?;
            Prices::parse(&text).map_err(|message| PlanError::Input {
                path: path.clone(),
                message,
            })?
        }
        None => Prices::bundled(),
    };
    let plan = plan(&input, &prices, &Sim::default()).map_err(PlanError::Invalid)?;
    if let Some(path) = &args.chart {
        chart(&plan, path).map_err(|message| PlanError::Write {
            path: path.clone(),
            message,
        })?;
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&plan).map_err(|e| PlanError::Write {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if path.as_os_str() != "-" {
            std::fs::write(path, json + "\n").map_err(|e| PlanError::Write {
                path: path.clone(),
                message: e.to_string(),
            })?;
        }
    }
    Ok(plan)
}

/// The resolved input as TOML.
pub fn input_toml(input: &PlanInput) -> String {
    toml::to_string_pretty(input).unwrap_or_else(|e| format!("# cannot print the input: {e}\n"))
}

/// One line of a chart: its label, its points (hour, value) and its colour.
type Line<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

/// Demand against capacity over the day, one panel per planned day (a weekday and Christmas, or
/// the weekend without a wave) and stream.
pub fn chart(plan: &Plan, path: &Path) -> Result<(), String> {
    let days: Vec<&DayPlan> = {
        let wanted = [DayKind::Weekday, DayKind::Christmas];
        let mut d: Vec<&DayPlan> = plan
            .days
            .iter()
            .filter(|d| wanted.contains(&d.kind))
            .collect();
        if d.len() < 2 {
            d = plan.days.iter().take(2).collect();
        }
        d
    };
    let root = SVGBackend::new(path, (1400, 460 * days.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((days.len(), 2));
    let tz = &plan.input.fleet.schedule.time_zones[0].0;
    for (i, area) in panels.iter().enumerate() {
        let day = days[i / 2];
        let (name, stream, loads) = if i % 2 == 0 {
            ("missions", &day.missions, &day.curve.missions)
        } else {
            ("shadows", &day.shadows, &day.curve.shadows)
        };
        let r = &stream.replay;
        let hours = |v: &[f64]| -> Vec<(f64, f64)> {
            v.iter()
                .enumerate()
                .map(|(m, y)| (m as f64 / 60.0, *y))
                .collect()
        };
        let demand: Vec<f64> = loads.iter().map(|l| l.shard_equivalents()).collect();
        let top = demand
            .iter()
            .chain(&r.policy.capacity)
            .chain(&r.on_demand_standard.capacity)
            .copied()
            .fold(1.0, f64::max)
            * 1.1;
        let mut c = ChartBuilder::on(area)
            .caption(
                format!("{:?} {} - {name} stream", day.kind, day.date),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..(demand.len() as f64 / 60.0), 0f64..top)
            .map_err(|e| e.to_string())?;
        c.configure_mesh()
            .x_desc(format!("hour ({tz})"))
            .y_desc("shard-equivalents (MiB/s or 1,000 records/s)")
            .x_labels(13)
            .draw()
            .map_err(|e| e.to_string())?;
        let series: [Line; 4] = [
            ("demand", hours(&demand), RGBColor(31, 119, 180)),
            (
                "provisioned + stream-scaler (shards)",
                hours(&r.policy.capacity),
                RGBColor(214, 39, 40),
            ),
            (
                "on-demand Standard (2x previous peak)",
                hours(&r.on_demand_standard.capacity),
                RGBColor(44, 160, 44),
            ),
            (
                "fixed at peak",
                hours(&r.fixed_peak.capacity),
                RGBColor(127, 127, 127),
            ),
        ];
        for (label, points, color) in series {
            c.draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
