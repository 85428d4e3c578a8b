//! What the application plugs into the mediator beside message routing.

use std::any::{Any, TypeId};
use std::collections::HashMap;

/// Values the application installs into the mediator when it builds it (the saga
/// runtime, the schedule), one per type. The mediator keeps them and never looks inside:
/// the module that owns a type reads it back with `Mediator::extension`.
#[derive(Default)]
pub(crate) struct Extensions {
    values: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl Extensions {
    /// Installs `value`, replacing one of the same type.
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Box::new(value));
    }

    /// The value of type `T`, if one was installed.
    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values.get(&TypeId::of::<T>())?.downcast_ref::<T>()
    }
}
