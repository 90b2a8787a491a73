from bench.nexmark.run import main

main()
