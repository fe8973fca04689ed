use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = demo::quickstart::Options::parse();
    control_plane::init_logging(control_plane::LogFormat::Text);
    let running = demo::quickstart::start(&opts).await?;
    println!("{}", running.banner());
    tokio::signal::ctrl_c().await?;
    println!("stopping…");
    running.stop().await
}
