//! What every handler may reach: the store, the metrics, the drain flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::FromRef;

use crate::metrics::Metrics;
use crate::storage::Storage;

/// Set once a shutdown has begun; readiness reads it.
#[derive(Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The most bytes one page of notes may take (`RESPONSE_LIMIT`).
#[derive(Clone, Copy)]
pub struct ResponseLimit(pub usize);

#[derive(Clone)]
pub struct AppState {
    pub storage: Storage,
    pub response_limit: ResponseLimit,
    pub metrics: Arc<Metrics>,
    pub draining: Draining,
}

impl AppState {
    pub fn new(storage: Storage, response_limit: usize) -> Self {
        Self {
            storage,
            response_limit: ResponseLimit(response_limit),
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

impl FromRef<AppState> for ResponseLimit {
    fn from_ref(state: &AppState) -> Self {
        state.response_limit
    }
}

impl FromRef<AppState> for Draining {
    fn from_ref(state: &AppState) -> Self {
        state.draining.clone()
    }
}
