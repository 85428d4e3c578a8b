use std::collections::HashMap;

/// One upcaster: payloads of `event_type` stored at schema version `from` become
/// version `to`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpcastStep {
    pub(crate) event_type: &'static str,
    pub(crate) from: u32,
    pub(crate) to: u32,
    /// For errors and build problems.
    pub(crate) name: &'static str,
    pub(crate) upcast: fn(serde_json::Value) -> Result<serde_json::Value, String>,
}

/// The upcasters of the program by (event type, from version).
#[derive(Default)]
pub(crate) struct Upcasters {
    steps: HashMap<(&'static str, u32), UpcastStep>,
}

impl Upcasters {
    /// Indexes `steps`. A second step from one (event type, version) is left out and
    /// returned with the one kept, as `(kept, left out)`.
    pub(crate) fn new(steps: impl IntoIterator<Item = UpcastStep>) -> (Self, Vec<(UpcastStep, UpcastStep)>) {
        let mut index: HashMap<(&'static str, u32), UpcastStep> = HashMap::new();
        let mut duplicates = Vec::new();
        for u in steps {
            match index.get(&(u.event_type, u.from)) {
                Some(first) => duplicates.push((*first, u)),
                None => {
                    index.insert((u.event_type, u.from), u);
                }
            }
        }
        (Upcasters { steps: index }, duplicates)
    }

    /// Every upcaster, for checks against the registered events.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &UpcastStep> + '_ {
        self.steps.values()
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
