"""Real local servers for tests and benchmarks (fault-injecting OpenAI stub, llama.cpp server)."""
