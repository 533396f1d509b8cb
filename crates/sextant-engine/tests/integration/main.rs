mod crash;
mod engine;
mod soak;
mod sparse;
