# frozen_string_literal: true

# Requests that allocate on purpose, to reproduce in seconds the bloat a real app shows
# after hours. Routed only with BLOAT_PROBE_WORKLOAD=1.
class WorkloadsController < ApplicationController
  SIZES = 24..(32 << 10)
  SIZE_RANGE = 1..(1 << 20)

  # GET /workload/strings?count=500&min_size=24&max_size=32768&keep=0.01&seed=1
  def strings
    render json: StringWorkload.new(
      count: query_params.integer(:count, default: 500, range: 1..20_000),
      sizes: query_params.ordered_sizes(:min_size, :max_size, default: SIZES, range: SIZE_RANGE),
      keep: query_params.fraction(:keep, default: 0.01),
      seed: query_params.integer(:seed, default: Random.rand(1 << 31), range: 0..(1 << 62))
    ).run
  end

  # GET /workload/churn?count=2000&min_size=24&max_size=32768&retain=0.01&window=2000&seed=1
  # window: blocks alive at once; by default all of them, until the request ends, as a
  # request's own objects are.
  def churn
    count = query_params.integer(:count, default: 2_000, range: 1..100_000)
    render json: NativeWorkload.new(
      count: count,
      window: query_params.integer(:window, default: count, range: 0..100_000),
      sizes: query_params.ordered_sizes(:min_size, :max_size, default: SIZES, range: SIZE_RANGE),
      retain: query_params.fraction(:retain, default: 0.01),
      seed: query_params.integer(:seed, default: Random.rand(1 << 31), range: 0..(1 << 62))
    ).run
  end
end
