# frozen_string_literal: true

require "test_helper"

class PostsTest < ActionDispatch::IntegrationTest
  setup { seed_posts(60) }

  test "GET /posts renders the first page of seeded posts" do
    get "/posts"
    assert_response :success
    assert_select "article.post", Post::PER_PAGE
    assert_select "article#post_1 h2", /Post 1:/
    assert_select "a", "Older"
  end

  test "the second page holds the rest" do
    get "/posts", params: { page: 2 }
    assert_select "article.post", 10
    assert_select "article#post_51"
  end

  test "a page number out of range gets 422 naming it" do
    get "/posts", params: { page: 0 }
    assert_response :unprocessable_entity
    assert_equal "page must be a whole number in 1..100000, got \"0\"", response.parsed_body["error"]
  end

  test "the seed is deterministic and its bodies vary in size" do
    first = Post.order(:id).pluck(:body)
    seed_posts(60)
    assert_equal first, Post.order(:id).pluck(:body)
    sizes = first.map(&:bytesize)
    assert_operator sizes.min, :<, 2_000
    assert_operator sizes.max, :>, 10_000
  end

  test "responses carry a Content-Length for ab -k" do
    get "/posts"
    assert_equal response.body.bytesize.to_s, response.headers["Content-Length"]
  end
end
