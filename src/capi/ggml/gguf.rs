//! The part of gguf.h that llama.h uses: the opaque `struct gguf_context`
//! (`llama_model_init_from_user` takes one; we refuse it, so none is ever made).

#![allow(non_camel_case_types)]

pub struct gguf_context {
    _private: [u8; 0],
}
