# frozen_string_literal: true

# Requests that allocate on purpose, to reproduce in seconds the bloat a real app shows
# after hours. Routed only with BLOAT_PROBE_WORKLOAD=1. Each reserves its worst case from
# WorkloadBudget before it allocates.
class WorkloadsController < ApplicationController
  # The app's own policy, tighter than what BloatProbe.churn allows
  # (BloatProbe.churn_limits): a request is a request, not a benchmark.
  POLICY = {
    strings: 1..20_000,
    count: 1..100_000,
    window: 0..100_000,
    size: 1..(1 << 20),
    kept: 1..(64 << 20),
    seed: 0..(1 << 62)
  }.freeze
  # Block sizes unless asked otherwise: churn's own defaults, 24 B to 32 KiB.
  DEFAULT_SIZES = BloatProbe.churn_limits.fetch(:default_sizes)

  rescue_from WorkloadBudget::OverRequestBudget do |error|
    render json: { error: error.message }, status: :unprocessable_entity
  end

  rescue_from WorkloadBudget::Exhausted, BloatProbe::RetainLimitError do |error|
    response.set_header("Retry-After", "1")
    render json: { error: error.message }, status: :service_unavailable
  end

  # GET /workload/strings?count=500&min_size=24&max_size=32768&keep=0.01&seed=1
  def strings
    run_within_budget StringWorkload.new(
      count: query_params.integer(:count, default: 500, range: POLICY[:strings]),
      sizes: sizes,
      keep: query_params.fraction(:keep, default: 0.01),
      seed: seed
    )
  end

  # GET /workload/churn?count=2000&min_size=24&max_size=32768&retain=0.01&window=2000&seed=1
  # window: blocks alive at once; by default all of them, until the request ends, as a
  # request's own objects are.
  def churn
    count = query_params.integer(:count, default: 2_000, range: POLICY[:count])
    run_within_budget NativeWorkload.new(
      count: count,
      window: query_params.integer(:window, default: count, range: POLICY[:window]),
      sizes: sizes,
      retain: query_params.fraction(:retain, default: 0.01),
      seed: seed
    )
  end

  # GET /workload/keep?bytes=1048576: keeps that much native memory for good, as a leak
  # does (the process budget still bounds it).
  def keep
    run_within_budget LeakWorkload.new(bytes: query_params.integer(:bytes, default: 1 << 20, range: POLICY[:kept]))
  end

  private

  def sizes
    query_params.ordered_sizes(:min_size, :max_size, default: DEFAULT_SIZES, range: POLICY[:size])
  end

  def seed
    query_params.integer(:seed, default: Random.rand(1 << 31), range: POLICY[:seed])
  end

  def run_within_budget(workload)
    WorkloadBudget.reserve(workload.worst_case_bytes, what: workload.class::WORST_CASE) do
      render json: workload.run
    end
  end
end
