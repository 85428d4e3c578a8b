//! HTTP for cqrs-ddd on axum.

pub mod context;
pub mod jwt;
pub mod problem;

pub use context::{AuthConfig, Claims, ContextLayer, ContextService};
pub use jwt::{JwtConfig, JwtConfigError, TokenError};
pub use problem::Problem;
