pub mod export;
pub mod load;
pub mod query;
pub mod repl;
pub mod repo;
pub mod serve;
