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

  # The root Cargo.toml and Cargo.lock come along: RubyGems builds with `cargo rustc --locked`,
  # and the extension's crate depends on the ones under crates/ by path.
  spec.files = Dir[
    "lib/**/*.rb", "ext/bloat_probe/Cargo.toml", "ext/bloat_probe/src/**/*.rs",
    "crates/*/Cargo.toml", "crates/*/src/**/*.rs", "crates/*/tests/fixtures/*", "Cargo.toml", "Cargo.lock", "README.md",
    "exe/bloat-probe"
  ]
  # bloat-probe PID, the command that reads a process from outside (crates/cli, through the extension).
  spec.bindir = "exe"
  spec.executables = ["bloat-probe"]
  spec.require_paths = ["lib"]
  spec.extensions = ["ext/bloat_probe/Cargo.toml"]
  # Used from a checkout (Bundler's `path:`), the spec's extension directory would default
  # to one beside the checkout, where RubyGems finds no gem.build_complete and warns
  # "Ignoring bloat_probe-... because its extensions are not built". `rake compile` builds
  # the library into lib/bloat_probe/ and marks it built there. (Not part of a packaged
  # gem: `gem install` builds into RubyGems' own extension directory.)
  spec.extension_dir = File.expand_path("lib/bloat_probe", __dir__)
end
