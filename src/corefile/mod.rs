//! STUB (replaced by merge)
#![allow(missing_docs, unused)]
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
#[derive(Debug, Clone)] pub struct Pos { pub file: Arc<Path>, pub line: u32, pub col: u32 }
#[derive(Debug, Clone)] pub struct Token { pub text: String, pub pos: Pos, pub quoted: bool }
#[derive(Debug, Clone)] pub struct ServerBlock { pub keys: Vec<Token>, pub directives: Vec<Directive> }
#[derive(Debug, Clone)] pub struct Directive { pub name: Token, pub args: Vec<Token>, pub block: Option<Vec<Directive>> }
#[derive(Debug, Clone)] pub struct Corefile { pub blocks: Vec<ServerBlock>, pub files: Vec<PathBuf> }
pub enum Transport { Dns }
pub struct ZoneAddr { pub transport: Transport, pub zone: String, pub port: Option<u16> }
#[derive(Debug, Clone, thiserror::Error)] #[error("{message}")] pub struct CorefileError { pub file: Arc<Path>, pub line: u32, pub col: u32, pub message: String }
pub fn parse_key(key: &Token) -> Result<Vec<ZoneAddr>, CorefileError> { todo!() }
pub fn parse_file(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Corefile, CorefileError> { todo!() }
pub fn real_env(name:&str)->Option<String> { todo!() }
pub struct Dispenser<'a> { d: &'a Directive }
impl<'a> Dispenser<'a> {
  pub fn new(d: &'a Directive) -> Self { todo!() }
  pub fn directive(&self) -> &'a Directive { todo!() }
  pub fn next_arg(&mut self) -> Option<&'a Token> { todo!() }
  pub fn expect_arg(&mut self, what: &str) -> Result<&'a Token, CorefileError> { todo!() }
  pub fn remaining(&mut self) -> &'a [Token] { todo!() }
  pub fn expect_end(&self) -> Result<(), CorefileError> { todo!() }
  pub fn block(&self) -> &'a [Directive] { todo!() }
  pub fn err(&self, msg: impl Into<String>) -> CorefileError { todo!() }
}
impl Token {
  pub fn err(&self, msg: impl Into<String>) -> CorefileError { todo!() }
  pub fn parse_u32(&self, what: &str, range: RangeInclusive<u32>) -> Result<u32, CorefileError> { todo!() }
  pub fn parse_duration(&self, what: &str) -> Result<Duration, CorefileError> { todo!() }
  pub fn parse_socket_addr(&self, what:&str, default_port:u16) -> Result<SocketAddr, CorefileError> { todo!() }
}
