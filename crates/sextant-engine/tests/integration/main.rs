mod crash;
mod documents;
mod engine;
mod format_fixtures;
mod soak;
mod sparse;
