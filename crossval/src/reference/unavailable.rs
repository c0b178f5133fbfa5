//! The reference runner when crossval was built without the reference
//! (`cfg(crossval_no_ref)`): loading fails with the reason, so nothing else is reachable.

use std::convert::Infallible;
use std::path::Path;

use super::loader;
use super::{FlashAttn, RefCtxParams};
use crate::Result;

pub struct RefModel {
    never: Infallible,
}

impl RefModel {
    pub fn load(_path: &Path) -> Result<RefModel> {
        loader::get()?;
        Err("the reference library cannot load in a crossval_no_ref build".into())
    }
    pub fn load_vocab_only(path: &Path) -> Result<RefModel> {
        Self::load(path)
    }
    pub fn n_vocab(&self) -> usize {
        match self.never {}
    }
    pub fn meta(&self, _key: &str) -> Option<String> {
        match self.never {}
    }
    pub fn add_bos(&self) -> bool {
        match self.never {}
    }
    pub fn tokenize(&self, _text: &str) -> Result<Vec<u32>> {
        match self.never {}
    }
    pub fn tokenize_with(&self, _text: &[u8], _add: bool, _parse: bool) -> Result<Vec<u32>> {
        match self.never {}
    }
    pub fn detokenize(&self, _ids: &[u32], _remove: bool, _unparse: bool) -> Result<Vec<u8>> {
        match self.never {}
    }
    pub fn token_text(&self, _token: u32) -> String {
        match self.never {}
    }
}

impl Drop for RefModel {
    fn drop(&mut self) {
        match self.never {}
    }
}

pub struct RefContext<'m> {
    model: &'m RefModel,
    pub flash_attn_requested: FlashAttn,
    pub flash_attn_enabled: bool,
    pub n_ctx: u32,
    pub threads: i32,
}

impl<'m> RefContext<'m> {
    pub fn new(model: &'m RefModel, _p: &RefCtxParams) -> Result<RefContext<'m>> {
        match model.never {}
    }
    pub fn model(&self) -> &RefModel {
        self.model
    }
    pub fn clear(&mut self) {
        match self.model.never {}
    }
    pub fn decode(&mut self, _tokens: &[u32], _pos0: u32) -> Result<Vec<Vec<f32>>> {
        match self.model.never {}
    }
}

pub struct GgmlCpuType {
    never: Infallible,
    pub ty: u32,
    pub name: String,
    pub block_size: usize,
    pub block_bytes: usize,
    pub vec_dot_type: u32,
}

impl GgmlCpuType {
    pub fn get(_ty: u32) -> Result<GgmlCpuType> {
        loader::get()?;
        Err("the reference library cannot load in a crossval_no_ref build".into())
    }
    pub fn from_float(&self, _x: &[f32]) -> Result<Vec<u8>> {
        match self.never {}
    }
    pub fn vec_dot(&self, _n: usize, _w: &[u8], _a: &[u8], _a_type: &GgmlCpuType) -> Result<f32> {
        match self.never {}
    }
    pub fn from_float_ref(&self, _x: &[f32]) -> Result<Vec<u8>> {
        match self.never {}
    }
    pub fn to_float(&self, _data: &[u8]) -> Result<Vec<f32>> {
        match self.never {}
    }
}
