# frozen_string_literal: true

class PostsController < ApplicationController
  def index
    @page = query_params.integer(:page, default: 1, range: 1..100_000)
    @posts = Post.cached_page(@page)
  end

  def show
    @post = Post.find(params[:id])
  end
end
