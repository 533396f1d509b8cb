//! `sextant drift …`: pin a collection's embedding distribution, manage canary queries, check
//! them, and show the report (also part of `collection info`).

use anyhow::{bail, Result};
use clap::Subcommand;
use sextant_engine::drift::DriftInfo;
use sextant_service::drift::{CanaryRequest, PinRequest, DEFAULT_CANARY_K};

use crate::db::{print_json, DbArgs};

/// Exit status of `drift check --fail-on-alarm` when an alarm is raised.
pub const EXIT_ALARM: i32 = 8;

/// `drift`.
#[derive(Debug, Subcommand)]
pub enum DriftCommand {
    /// Pin the distribution of the collection's vectors now as the reference later ones are
    /// compared with (and set the alarm thresholds).
    Pin {
        /// Collection or alias.
        name: String,
        /// Alarm when the centroid moved more than this many reference spreads [default: 0.2,
        /// or the value set before].
        #[arg(long)]
        shift_alarm: Option<f64>,
        /// Alarm when the canaries' mean precision@k falls below this [default: 0.8, or the
        /// value set before].
        #[arg(long)]
        precision_alarm: Option<f64>,
    },
    /// Add a canary query: a text (embedded with the collection's model) or a vector, with the
    /// ids expected in its top k (default: the exact top k now).
    CanaryAdd {
        /// Collection or alias.
        name: String,
        /// The canary's name.
        #[arg(long = "canary", value_name = "NAME")]
        canary: String,
        /// The query text (document collections).
        #[arg(long, conflicts_with = "vector", required_unless_present = "vector")]
        text: Option<String>,
        /// The query vector, as a JSON array.
        #[arg(long)]
        vector: Option<String>,
        /// Vector space (collections with several).
        #[arg(long)]
        space: Option<String>,
        /// Results checked.
        #[arg(long, default_value_t = DEFAULT_CANARY_K)]
        k: usize,
        /// Expected ids, comma-separated (integers or strings).
        #[arg(long, value_delimiter = ',')]
        expect: Option<Vec<String>>,
    },
    /// Remove a canary query.
    CanaryRemove {
        /// Collection or alias.
        name: String,
        /// The canary's name.
        #[arg(long = "canary", value_name = "NAME")]
        canary: String,
    },
    /// List the canary queries.
    Canaries {
        /// Collection or alias.
        name: String,
    },
    /// Run every canary and record the check; show the report.
    Check {
        /// Collection or alias.
        name: String,
        /// Exit with status 8 when an alarm is raised (for cron jobs and CI).
        #[arg(long)]
        fail_on_alarm: bool,
    },
    /// Show the drift report.
    Status {
        /// Collection or alias.
        name: String,
    },
}

/// The report as text lines (also used by `collection info`).
pub fn report_lines(d: &DriftInfo) -> Vec<String> {
    let mut out = Vec::new();
    match &d.pinned_at {
        Some(at) => out.push(format!("drift reference pinned {at}")),
        None => out.push("drift: no reference pinned (`sextant drift pin`)".into()),
    }
    for s in &d.spaces {
        let n = &s.now;
        let mut line = format!(
            "  space {}: {} vectors, norm {:.4} ± {:.4} ({:.4}..{:.4}), spread {:.4}",
            n.space, n.count, n.mean_norm, n.norm_std, n.min_norm, n.max_norm, n.spread
        );
        if let (Some(r), Some(shift)) = (&s.reference, s.centroid_shift) {
            line.push_str(&format!(
                "; centroid shift {shift:.4} (alarm above {}), norm shift {:.2}% since {} vectors",
                d.shift_alarm,
                s.norm_shift.unwrap_or(0.0) * 100.0,
                r.count
            ));
        }
        out.push(line);
    }
    match &d.last_check {
        Some(c) => out.push(format!(
            "  canaries: {}; last check precision@k {:.3} (alarm below {}); history {}",
            d.canaries,
            c.mean,
            d.precision_alarm,
            d.precision_history
                .iter()
                .map(|p| format!("{p:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        )),
        None => out.push(format!("  canaries: {}; never checked", d.canaries)),
    }
    if d.alarms.is_empty() {
        out.push("  no alarm".into());
    }
    for a in &d.alarms {
        out.push(format!("  ALARM: {a}"));
    }
    out
}

fn print_report(args: &DbArgs, d: &DriftInfo) -> Result<()> {
    if args.json {
        print_json(d)?;
    } else {
        for l in report_lines(d) {
            println!("{l}");
        }
    }
    Ok(())
}

/// Runs `drift …`.
pub fn run_drift(args: &DbArgs, cmd: DriftCommand) -> Result<()> {
    let svc = crate::db::service(args)?;
    match cmd {
        DriftCommand::Pin {
            name,
            shift_alarm,
            precision_alarm,
        } => {
            let r = svc.drift_pin(
                &name,
                &PinRequest {
                    shift_alarm,
                    precision_alarm,
                },
            )?;
            if args.json {
                print_json(&r)?;
            } else {
                for s in &r.spaces {
                    println!(
                        "pinned space {} of {name:?}: {} vectors, norm {:.4}, spread {:.4}",
                        s.space, s.count, s.mean_norm, s.spread
                    );
                }
            }
        }
        DriftCommand::CanaryAdd {
            name,
            canary,
            text,
            vector,
            space,
            k,
            expect,
        } => {
            let vector = vector
                .map(|v| {
                    serde_json::from_str::<Vec<f32>>(&v)
                        .map_err(|e| anyhow::anyhow!("--vector: not a JSON array of numbers: {e}"))
                })
                .transpose()?;
            let expected = expect.map(|ids| {
                ids.into_iter()
                    .map(|s| match s.parse::<u64>() {
                        Ok(n) => serde_json::json!(n),
                        Err(_) => serde_json::json!(s),
                    })
                    .collect()
            });
            let c = svc.drift_add_canary(
                &name,
                &CanaryRequest {
                    name: canary,
                    text,
                    vector,
                    space,
                    k: Some(k),
                    expected,
                },
            )?;
            if args.json {
                print_json(&c)?;
            } else {
                let ids: Vec<String> = c.expected.iter().map(ToString::to_string).collect();
                println!(
                    "canary {:?} of {name:?}: top {} expected to hold {}",
                    c.name,
                    c.k,
                    ids.join(", ")
                );
            }
        }
        DriftCommand::CanaryRemove { name, canary } => {
            svc.drift_remove_canary(&name, &canary)?;
            if !args.json {
                println!("removed canary {canary:?} of {name:?}");
            } else {
                print_json(&serde_json::json!({"removed": canary}))?;
            }
        }
        DriftCommand::Canaries { name } => {
            let list = svc.collection(&name)?.drift_canaries();
            if args.json {
                print_json(&list)?;
            } else if list.is_empty() {
                println!("{name:?} has no canaries");
            } else {
                for c in list {
                    println!(
                        "{}: k {}, {} expected{}",
                        c.name,
                        c.k,
                        c.expected.len(),
                        c.text.map(|t| format!(", text {t:?}")).unwrap_or_default()
                    );
                }
            }
        }
        DriftCommand::Check {
            name,
            fail_on_alarm,
        } => {
            let d = svc.drift_check(&name)?;
            print_report(args, &d)?;
            if fail_on_alarm && !d.alarms.is_empty() {
                std::process::exit(EXIT_ALARM);
            }
        }
        DriftCommand::Status { name } => match svc.drift_status(&name)? {
            Some(d) => print_report(args, &d)?,
            None => bail!(
                "collection {name:?} is not monitored: pin a reference (`sextant drift pin {name}`) or add a canary"
            ),
        },
    }
    Ok(())
}
