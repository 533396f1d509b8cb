mod crash;
mod documents;
mod durability;
mod engine;
mod power_loss;
mod soak;
mod sparse;
mod tenancy;
