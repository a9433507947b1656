use crate::client::Api;
use crate::spec::Spec;
use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;

#[derive(Subcommand, Debug)]
pub enum RepoCommand {
    /// Create a repository: quadmesh repo create USER:PASSWORD@HOST:PORT/REPO
    Create { spec: String },
    /// Delete a repository and all its data.
    Delete { spec: String },
    /// List the repositories of a server: quadmesh repo list USER:PASSWORD@HOST:PORT
    List { spec: String },
}

pub async fn run(command: RepoCommand) -> Result<()> {
    match command {
        RepoCommand::Create { spec } => {
            let api = Api::new(Spec::parse(&spec)?)?;
            api.send(api.request(Method::PUT, &api.spec.repository_url()?))
                .await?;
            println!("created repository {}", api.spec.repository()?);
        }
        RepoCommand::Delete { spec } => {
            let api = Api::new(Spec::parse(&spec)?)?;
            api.send(api.request(Method::DELETE, &api.spec.repository_url()?))
                .await?;
            println!("deleted repository {}", api.spec.repository()?);
        }
        RepoCommand::List { spec } => {
            let api = Api::new(Spec::parse(&spec)?)?;
            let url = format!("{}/repositories", api.spec.base_url());
            let rows: Vec<serde_json::Value> = api
                .send(
                    api.request(Method::GET, &url)
                        .header("accept", "application/json"),
                )
                .await?
                .json()
                .await?;
            let header = vec!["repository".to_owned(), "size".to_owned()];
            let mut table = Vec::new();
            for row in rows {
                let id = row["id"].as_str().unwrap_or_default().to_owned();
                let size_url = format!("{}/repositories/{id}/size", api.spec.base_url());
                let size = api
                    .send(api.request(Method::GET, &size_url))
                    .await?
                    .text()
                    .await?;
                table.push(vec![id, size.trim().to_owned()]);
            }
            print!("{}", quadmesh_server::render_table(&header, &table));
        }
    }
    Ok(())
}
