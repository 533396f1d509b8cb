mod crash;
mod engine;
mod soak;
