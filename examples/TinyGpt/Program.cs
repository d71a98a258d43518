return TinyGpt.Cli.Run(args);
