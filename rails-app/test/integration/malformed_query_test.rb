# frozen_string_literal: true

require "test_helper"

class MalformedQueryTest < ActionDispatch::IntegrationTest
  test "a query string nested 200 deep is a 400 on every route, not a 500" do
    deep = "a#{"[b]" * 200}=1"
    with_error_pages do
      ["/posts", "/posts/1", "/"].each do |path|
        get "#{path}?#{deep}"
        assert_response :bad_request, path
        assert_match(/query string was refused/, response.body)
      end
    end
  end

  test "ordinary nested parameters still arrive" do
    seed_posts(60)
    get "/posts?page=2&x[y]=1"
    assert_response :success
  end
end
