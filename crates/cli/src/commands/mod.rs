pub mod backup;
pub mod export;
pub mod load;
pub mod local_cluster;
pub mod query;
pub mod repl;
pub mod repo;
pub mod serve;
