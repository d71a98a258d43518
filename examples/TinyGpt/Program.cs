System.Console.WriteLine("TinyGpt");
