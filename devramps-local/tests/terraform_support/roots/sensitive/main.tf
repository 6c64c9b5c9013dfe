# A sensitive output, and a password variable used in a resource (Terraform prints it in the
# plan: the runner redacts it as a secret of the request).
terraform {
  backend "s3" {}
  required_providers {
    devramps = {
      source  = "devramps/devramps"
      version = "1.0.0"
    }
  }
}

variable "seed" {
  type = string
}

variable "password" {
  type = string
}

resource "devramps_thing" "db" {
  name = "db-${var.password}"
}

output "token" {
  value     = "tok-${var.seed}-${devramps_thing.db.id}"
  sensitive = true
}

output "plain" {
  value = "plain-${var.seed}"
}
