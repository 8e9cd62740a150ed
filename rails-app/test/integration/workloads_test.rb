# frozen_string_literal: true

require "test_helper"

class WorkloadsTest < ActionDispatch::IntegrationTest
  MiB = 1 << 20

  test "workload routes are 404 unless enabled" do
    with_switch(:workload, false) do
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
        "/workload/churn?count=abc" => /count must be an integer in 1\.\.100000, got "abc"/,
        "/workload/churn?count=0" => /count must be an integer in 1\.\.100000, got "0"/,
        "/workload/churn?retain=2" => /retain must be a number in 0\.0\.\.1\.0, got "2"/,
        "/workload/churn?min_size=500&max_size=100" => /max_size \(100\) must be at least min_size \(500\)/,
        "/workload/strings?count=-1" => /count must be an integer in 1\.\.20000/,
        "/workload/strings?keep=x" => /keep must be a number in 0\.0\.\.1\.0/,
        "/workload/strings?max_size=99999999" => /max_size must be an integer in 1\.\.1048576/,
        "/workload/churn?count[]=5" => /count must be an integer in 1\.\.100000, got \["5"\]/
      }.each do |path, message|
        get path
        assert_response :unprocessable_entity, path
        assert_match message, response.parsed_body["error"], path
      end
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
      assert_operator StringWorkload.cached_entries, :<=, StringWorkload::CACHE_ENTRIES
    end
  end
end
