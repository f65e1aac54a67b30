//! What every handler may reach: the store, the metrics, the drain flag.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::metrics::Metrics;
use crate::shutdown::Draining;
use crate::storage::Storage;

#[derive(Clone)]
pub struct AppState {
    pub storage: Storage,
    pub metrics: Arc<Metrics>,
    pub draining: Draining,
}

impl AppState {
    pub fn new(storage: Storage) -> Self {
        Self {
            storage,
            metrics: Arc::new(Metrics::default()),
            draining: Draining::default(),
        }
    }
}

impl FromRef<AppState> for Storage {
    fn from_ref(state: &AppState) -> Self {
        state.storage.clone()
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.metrics)
    }
}

impl FromRef<AppState> for Draining {
    fn from_ref(state: &AppState) -> Self {
        state.draining.clone()
    }
}
