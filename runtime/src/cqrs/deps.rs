use std::any::{Any, TypeId, type_name};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::error::{Error, Result};

/// A service injected into a handler parameter, provided with `AppBuilder::provide`.
pub struct Dep<T>(Arc<T>);

impl<T> Dep<T> {
    /// The shared value.
    pub fn into_inner(self) -> Arc<T> {
        self.0
    }
}

impl<T> Clone for Dep<T> {
    fn clone(&self) -> Self {
        Dep(self.0.clone())
    }
}

impl<T> Deref for Dep<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: fmt::Debug> fmt::Debug for Dep<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The values given to `AppBuilder::provide`, by type.
#[derive(Clone, Default)]
pub(crate) struct Deps {
    values: super::extensions::TypeMap<Arc<dyn Any + Send + Sync>>,
}

impl Deps {
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: Arc<T>) {
        self.values.insert(TypeId::of::<T>(), value);
    }

    pub(crate) fn contains(&self, id: TypeId) -> bool {
        self.values.contains_key(&id)
    }

    pub(crate) fn get<T: Send + Sync + 'static>(&self, needed_by: &'static str) -> Result<Dep<T>> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|v| v.clone().downcast::<T>().ok())
            .map(Dep)
            .ok_or(Error::MissingDependency { type_name: type_name::<T>(), needed_by })
    }
}
