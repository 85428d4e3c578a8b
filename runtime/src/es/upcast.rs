use std::collections::HashMap;

use crate::registry::UpcasterRegistration;

/// The upcasters of the program by (event type, from version).
#[derive(Default)]
pub(crate) struct Upcasters {
    steps: HashMap<(&'static str, u32), &'static UpcasterRegistration>,
}

impl Upcasters {
    /// Indexes the registrations; a second one for a (type, from) pair is a problem.
    pub(crate) fn collect(problems: &mut Vec<String>) -> Self {
        let mut steps: HashMap<(&'static str, u32), &'static UpcasterRegistration> = HashMap::new();
        for u in inventory::iter::<UpcasterRegistration> {
            if let Some(first) = steps.get(&(u.event_type, u.from)) {
                problems.push(format!(
                    "event `{}` has two upcasters from schema version {}: `{}` and `{}`; keep one",
                    u.event_type, u.from, first.name, u.name
                ));
                continue;
            }
            steps.insert((u.event_type, u.from), u);
        }
        Upcasters { steps }
    }

    /// The program's upcasters, for decoding outside a loader (projections).
    pub(crate) fn global() -> &'static Upcasters {
        static GLOBAL: std::sync::OnceLock<Upcasters> = std::sync::OnceLock::new();
        GLOBAL.get_or_init(|| Upcasters::collect(&mut Vec::new()))
    }

    /// Every upcaster, for checks against the registered events.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &'static UpcasterRegistration> + '_ {
        self.steps.values().copied()
    }

    /// Brings a payload from `from` to `to` through the chain of upcasters.
    pub(crate) fn upcast(
        &self,
        event_type: &str,
        from: u32,
        to: u32,
        mut value: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        if from > to {
            return Err(format!(
                "stored at schema version {from}, newer than the current version {to}; deploy the newer code"
            ));
        }
        let mut at = from;
        while at < to {
            let Some(step) = self.steps.get(&(event_type, at)) else {
                return Err(format!(
                    "no upcaster from schema version {at} (stored at {from}, current {to}); add `#[upcaster(event = .., from = {at}, to = ..)]`"
                ));
            };
            value = (step.upcast)(value).map_err(|e| format!("upcaster `{}` failed: {e}", step.name))?;
            at = step.to;
        }
        Ok(value)
    }
}
