//! App state for handlers: values registered once with the [`Registry`](crate::Registry) and
//! reached by type from every job's [`JobContext::state`](crate::JobContext::state), in the
//! manner of axum's `State`/`Extension`.

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    fmt,
    sync::Arc,
};

/// The values a registry carries, one per type.
#[derive(Clone, Default)]
pub(crate) struct StateMap {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    names: Vec<&'static str>,
}

impl StateMap {
    /// Adds `value`, replacing an earlier value of the same type.
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        if self
            .values
            .insert(TypeId::of::<T>(), Arc::new(value))
            .is_none()
        {
            self.names.push(std::any::type_name::<T>());
        }
    }

    /// The value of type `T`, if one was registered.
    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Result<&T, MissingState> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
            .ok_or(MissingState {
                type_name: std::any::type_name::<T>(),
            })
    }
}

impl fmt::Debug for StateMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.names).finish()
    }
}

/// A handler asked for state of a type that was never registered.
///
/// Converts into a retryable [`JobError`](crate::JobError) with `?`; register the value with
/// [`Registry::with_state`](crate::Registry::with_state).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no app state of type `{type_name}` is registered: add it with `Registry::with_state` before starting the worker"
)]
pub struct MissingState {
    /// The Rust type that was asked for.
    pub type_name: &'static str,
}
