mod crash;
mod documents;
mod engine;
mod soak;
mod sparse;
mod tenancy;
