//! Choosing the runs of a `test` (`--input`, `--persona`, `--grep`,
//! `--last-failed`): the plan's input × iteration slots that pass every
//! filter given, in the order they would run anyway.

use std::collections::HashSet;
use std::path::Path;

use crate::config::project::limits::Shard;
use crate::error::{Error, Result};
use crate::pulled::{load_personas, Input};
use crate::results::{self, TraceRecord};

/// One run of the plan: an iteration of an input (an index into the inputs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) iteration: u32,
    pub(crate) input: usize,
}

/// The filters typed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filters<'a> {
    pub(crate) inputs: &'a [String],
    pub(crate) persona: Option<&'a str>,
    pub(crate) grep: Option<&'a str>,
    /// The (input, iteration) pairs that failed last time, from
    /// [`last_failed`].
    pub(crate) failed: Option<&'a HashSet<(String, u32)>>,
}

impl Filters<'_> {
    pub(crate) fn any(&self) -> bool {
        !self.inputs.is_empty()
            || self.persona.is_some()
            || self.grep.is_some()
            || self.failed.is_some()
    }
}

/// What identifies an input across pulls: its id, else its text.
fn key(id: Option<&str>, text: &str) -> String {
    match id {
        Some(id) => format!("id:{id}"),
        None => format!("text:{text}"),
    }
}

/// The slots to run, or `None` when no filter is given (every slot).
pub(crate) fn choose(
    pulled_dir: &Path,
    inputs: &[Input],
    iterations: u32,
    f: &Filters<'_>,
) -> Result<Option<Vec<Slot>>> {
    if !f.any() {
        return Ok(None);
    }
    for id in f.inputs {
        if !inputs.iter().any(|i| i.id.as_deref() == Some(id.as_str())) {
            return Err(Error::config(
                format!("--input {id}: no pulled input has this id"),
                Some("`fluxloop test --list` prints the runs with their input ids".into()),
            ));
        }
    }
    let persona_ids = match f.persona {
        Some(p) => Some(persona_ids(pulled_dir, p)?),
        None => None,
    };
    let grep = f.grep.map(str::to_lowercase);
    let wanted = |i: &Input| {
        (f.inputs.is_empty() || f.inputs.iter().any(|id| i.id.as_deref() == Some(id)))
            && persona_ids
                .as_ref()
                .is_none_or(|ids| i.persona.as_ref().is_some_and(|p| ids.contains(p)))
            && grep
                .as_ref()
                .is_none_or(|g| i.text.to_lowercase().contains(g.as_str()))
    };
    // The failed runs are rerun whatever `--iterations` is now, as pytest
    // `--lf` reruns the failed tests.
    let last_iteration = f
        .failed
        .and_then(|set| set.iter().map(|(_, it)| it.saturating_add(1)).max());
    let mut slots = Vec::new();
    for iteration in 0..last_iteration.unwrap_or(iterations) {
        for (n, input) in inputs.iter().enumerate() {
            let failed_before = f.failed.is_none_or(|set| {
                set.contains(&(key(input.id.as_deref(), &input.text), iteration))
            });
            if failed_before && wanted(input) {
                slots.push(Slot {
                    iteration,
                    input: n,
                });
            }
        }
    }
    if slots.is_empty() {
        return Err(Error::config(
            "no run matches the selection (--input, --persona, --grep, --last-failed)",
            Some("`fluxloop test --list` without them prints every run".into()),
        ));
    }
    Ok(Some(slots))
}

/// Shard `shard` of the runs: every `total`-th run of the run list sorted
/// by (iteration, input), from the `index`-th. Round-robin keeps shards
/// within one run of each other, and depends only on the bundle's inputs
/// and the flags, so every shard of a job computes the same partition.
pub(crate) fn shard(mut slots: Vec<Slot>, shard: Shard) -> Vec<Slot> {
    slots.sort_by_key(|s| (s.iteration, s.input));
    let (index, total) = (shard.index as usize - 1, shard.total as usize);
    slots
        .into_iter()
        .enumerate()
        .filter(|(n, _)| n % total == index)
        .map(|(_, s)| s)
        .collect()
}

/// The ids of the pulled personas whose name (ignoring case) or id is `wanted`.
fn persona_ids(pulled_dir: &Path, wanted: &str) -> Result<HashSet<String>> {
    let mut names = Vec::new();
    let mut ids = HashSet::new();
    // A persona without an id or a name has none to match or list.
    for p in load_personas(pulled_dir)? {
        let matches = p.id == wanted || (!p.name.is_empty() && p.name.eq_ignore_ascii_case(wanted));
        if matches && !p.id.is_empty() {
            ids.insert(p.id.clone());
        }
        if !p.name.is_empty() {
            names.push(p.name);
        }
    }
    if ids.is_empty() {
        let known = if names.is_empty() {
            "the scenario has no personas".to_string()
        } else {
            format!("personas: {}", names.join(", "))
        };
        return Err(Error::config(
            format!("--persona {wanted}: no such persona in the pulled scenario ({known})"),
            None,
        ));
    }
    Ok(ids)
}

/// `scenario`'s newest result directory and the (input, iteration) pairs
/// that failed in it (empty when every run passed).
pub(crate) fn last_failed(
    results_root: &Path,
    scenario: &str,
) -> Result<(std::path::PathBuf, HashSet<(String, u32)>)> {
    let Some(dir) = results::newest_dir(results_root, Some(scenario))? else {
        return Err(Error::config(
            format!("--last-failed: scenario {scenario} has no earlier results to rerun the failures of"),
            Some("run `fluxloop test` first; its failed runs are then what --last-failed reruns".into()),
        ));
    };
    let mut failed = HashSet::new();
    results::read_trace(&dir, |r: TraceRecord| {
        if !r.success {
            failed.insert((key(r.input_item_id.as_deref(), &r.input), r.iteration));
        }
        Ok(())
    })?;
    Ok((dir, failed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pulled::PERSONAS;
    use serde_json::Value;

    fn input(id: &str, text: &str, persona: &str) -> Input {
        Input {
            text: text.into(),
            id: Some(id.into()),
            persona: Some(persona.into()),
            persona_detail: None,
            item: Value::Null,
        }
    }

    #[test]
    fn filters_combine_and_last_failed_keeps_its_iterations() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join(PERSONAS),
            r#"[{"id": "p1", "name": "Busy"}, {"id": "p2", "name": "Calm"}]"#,
        )
        .unwrap();
        let inputs = [
            input("a", "Refund please", "p1"),
            input("b", "refund now", "p2"),
            input("c", "Where is it", "p1"),
        ];
        let slot = |iteration, input| Slot { iteration, input };
        let pick = |f: &Filters<'_>, iterations| choose(tmp.path(), &inputs, iterations, f);
        assert_eq!(pick(&Filters::default(), 2).unwrap(), None);
        let grep = Filters {
            grep: Some("REFUND"),
            ..Filters::default()
        };
        assert_eq!(
            pick(&grep, 2).unwrap(),
            Some(vec![slot(0, 0), slot(0, 1), slot(1, 0), slot(1, 1)])
        );
        let both = Filters {
            grep: Some("refund"),
            persona: Some("busy"),
            ..Filters::default()
        };
        assert_eq!(pick(&both, 1).unwrap(), Some(vec![slot(0, 0)]));
        let failed: HashSet<(String, u32)> = [("id:c".to_string(), 3)].into();
        let lf = Filters {
            failed: Some(&failed),
            ..Filters::default()
        };
        assert_eq!(pick(&lf, 1).unwrap(), Some(vec![slot(3, 2)]));
        let ids = ["c".to_string(), "a".to_string()];
        let by_id = Filters {
            inputs: &ids,
            ..Filters::default()
        };
        assert_eq!(pick(&by_id, 1).unwrap(), Some(vec![slot(0, 0), slot(0, 2)]));
        let none = Filters {
            grep: Some("zzz"),
            ..Filters::default()
        };
        assert!(pick(&none, 1).is_err());
    }

    #[test]
    fn shards_partition_the_runs_in_balanced_round_robin() {
        let slot = |iteration, input| Slot { iteration, input };
        // Out of order on purpose: the partition must not depend on it.
        let all: Vec<Slot> = (0..2)
            .flat_map(|it| (0..5).rev().map(move |i| slot(it, i)))
            .collect();
        let of = |index, total| shard(all.clone(), Shard { index, total });
        assert_eq!(
            of(1, 3),
            vec![slot(0, 0), slot(0, 3), slot(1, 1), slot(1, 4)]
        );
        assert_eq!(of(2, 3), vec![slot(0, 1), slot(0, 4), slot(1, 2)]);
        assert_eq!(of(3, 3), vec![slot(0, 2), slot(1, 0), slot(1, 3)]);
        let mut union: Vec<Slot> = (1..=4).flat_map(|i| of(i, 4)).collect();
        union.sort_by_key(|s| (s.iteration, s.input));
        assert_eq!(union.len(), all.len());
        union.dedup();
        assert_eq!(union.len(), all.len(), "every run in exactly one shard");
        assert_eq!(of(1, 1).len(), 10);
        assert!(shard(vec![slot(0, 0)], Shard { index: 2, total: 2 }).is_empty());
    }
}
