# frozen_string_literal: true

require_relative "lib/bloat_probe/version"

Gem::Specification.new do |spec|
  spec.name = "bloat_probe"
  spec.version = BloatProbe::VERSION
  spec.authors = ["bloat_probe developers"]
  spec.summary = "See glibc malloc's arenas from Ruby, and reproduce the bloat they cause"
  spec.description = "A Rust extension (magnus + rb-sys) that reads mallinfo2, malloc_info and " \
                     "malloc_stats, detects jemalloc/tcmalloc/mimalloc, and runs a GVL-free malloc workload."
  spec.license = "MIT"
  spec.required_ruby_version = ">= 3.1"

  # The root Cargo.toml and Cargo.lock come along: RubyGems builds with `cargo rustc --locked`.
  spec.files = Dir[
    "lib/**/*.rb", "ext/bloat_probe/Cargo.toml", "ext/bloat_probe/src/**/*.rs",
    "ext/bloat_probe/tests/fixtures/*", "Cargo.toml", "Cargo.lock", "README.md"
  ]
  spec.require_paths = ["lib"]
  spec.extensions = ["ext/bloat_probe/Cargo.toml"]
end
