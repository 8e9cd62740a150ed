# frozen_string_literal: true

require "test_helper"

class WorkloadsTest < ActionDispatch::IntegrationTest
  MiB = 1 << 20

  # Each test starts with empty caches, as a fresh process does.
  setup do
    StringWorkload::CACHE.clear
    NativeWorkload::KEPT.clear.each(&:release)
    LeakWorkload.release_all
  end

  test "keep holds what it was asked for, for good, and refuses what the policy does not allow" do
    with_switch(:workload) do
      before = BloatProbe.retained_bytes
      2.times { get "/workload/keep", params: { bytes: 2 * MiB } }
      assert_response :success
      assert_equal({ "bytes" => 2 * MiB, "kept" => 2 }, response.parsed_body)
      assert_operator BloatProbe.retained_bytes - before, :>=, 4 * MiB
      get "/workload/keep", params: { bytes: 65 * MiB }
      assert_response :unprocessable_entity
      assert_match(/bytes must be a whole number in 1\.\.67108864/, response.parsed_body["error"])
    end
  end

  test "workload routes are 404 unless enabled" do
    with_switch(:workload, value: false) do
      with_error_pages do
        get "/workload/strings"
        assert_response :not_found
        get "/workload/churn"
        assert_response :not_found
      end
    end
  end

  test "bad parameters get 422 with a JSON error naming the value and the range" do
    with_switch(:workload) do
      {
        "/workload/churn?count=abc" => /count must be a whole number in 1\.\.100000, got "abc"/,
        "/workload/churn?count=0" => /count must be a whole number in 1\.\.100000, got "0"/,
        "/workload/churn?retain=2" => /retain must be a number in 0\.0\.\.1\.0, got "2"/,
        "/workload/churn?min_size=500&max_size=100" => /max_size \(100\) must be at least min_size \(500\)/,
        "/workload/strings?count=-1" => /count must be a whole number in 1\.\.20000/,
        "/workload/strings?keep=x" => /keep must be a number in 0\.0\.\.1\.0/,
        "/workload/strings?max_size=99999999" => /max_size must be a whole number in 1\.\.1048576/,
        "/workload/churn?count[]=5" => /count must be a whole number in 1\.\.100000, got an Array of 1 elements/
      }.each do |path, message|
        get path
        assert_response :unprocessable_entity, path
        assert_match message, response.parsed_body["error"], path
      end
    end
  end

  test "a request whose worst case is over the per-request budget is refused before it allocates" do
    with_switch(:workload) do
      {
        "/workload/strings?count=20000&min_size=1048576&max_size=1048576" =>
          /\Acount × max_size = 20971520000 bytes \(20 GiB\) is over the per-request budget of 512 MiB/,
        "/workload/churn?count=3000&max_size=1048576" =>
          /\A\(min\(window, count\) \+ count × retain\) × max_size = 3177185280 bytes .* budget of 512 MiB/,
        "/workload/churn?count=100000&window=100000&max_size=1048576" => /over the per-request budget of 512 MiB/
      }.each do |path, message|
        # Once first: a process's first request makes Rails build what it keeps for the
        # next ones (4.5 MB, measured here when this test ran first).
        get path
        growth = malloc_growth { get path }
        assert_response :unprocessable_entity, path
        assert_match message, response.parsed_body["error"], path
        assert_operator growth, :<, 1 << 20, "#{path} allocated before it was refused"
      end
    end
  end

  test "parameters the route accepts run, whatever their combination" do
    with_switch(:workload) do
      get "/workload/churn", params: { count: 10, window: 100_000, min_size: 1 << 20, max_size: 1 << 20 }
      assert_response :success
      assert_equal 10, response.parsed_body["allocations"]
    end
  end

  test "a process at its budget answers 503 with Retry-After, and serves again once it is free" do
    with_switch(:workload) do
      WorkloadBudget.baseline!
      with_setting(:workload_budget, 48 * MiB) do
        WorkloadBudget.reserve(40 * MiB, what: "another request") do
          get "/workload/strings", params: { count: 16, min_size: MiB, max_size: MiB }
          assert_response :service_unavailable
          assert_equal "1", response.headers["Retry-After"]
          assert_match(/running requests may take 40 MiB more, of a 48 MiB budget .* this request needs 16 MiB/,
                       response.parsed_body["error"])
        end
        get "/workload/strings", params: { count: 16, min_size: MiB, max_size: MiB }
        assert_response :success
        assert_equal 0, WorkloadBudget.reserved
      end
    end
  end

  test "the kept caches are bounded in bytes" do
    with_switch(:workload) do
      6.times do |seed|
        get "/workload/strings", params: { count: 16, min_size: MiB, max_size: MiB, keep: 1.0, seed: seed }
        assert_response :success
        get "/workload/churn", params: { count: 16, min_size: MiB, max_size: MiB, retain: 1.0, window: 0, seed: seed }
        assert_response :success
      end
      cached = StringWorkload::CACHE.bytes
      assert_operator cached, :<=, StringWorkload::CACHE_BYTES
      assert_operator cached, :>=, StringWorkload::CACHE_BYTES - 16 * MiB, "the cache does fill"
      assert_operator NativeWorkload::KEPT.bytes, :<=, NativeWorkload::KEPT_BYTES
      assert_operator BloatProbe.retained_bytes, :<=, NativeWorkload::KEPT_BYTES, "evicted results were released"
    end
  end

  test "native churn on the request thread keeps memory measurably" do
    with_switch(:workload) do
      growth = malloc_growth do
        get "/workload/churn", params: { count: 1024, min_size: 16_384, max_size: 16_384, retain: 1.0, window: 0 }
      end
      assert_response :success
      assert_equal 16 * MiB, response.parsed_body["retained_bytes"]
      assert_operator growth, :>=, 16 * MiB
    end
  end

  test "Ruby strings built per request, some kept in the bounded cache" do
    with_switch(:workload) do
      growth = malloc_growth do
        get "/workload/strings", params: { count: 1000, min_size: 16_384, max_size: 16_384, keep: 1.0, seed: 1 }
      end
      assert_response :success
      assert_equal({ "strings" => 1000, "bytes" => 1000 * 16_384, "kept" => 1000 }, response.parsed_body)
      assert_operator growth, :>=, 1000 * 16_384
      assert_operator StringWorkload::CACHE.size, :<=, StringWorkload::CACHE_ENTRIES
    end
  end
end
